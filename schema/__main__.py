"""``python -m schema``: rewrite schema/schema.graphql from the code."""

from __future__ import annotations

from schema.build import SCHEMA_FILE, print_sdl

if __name__ == "__main__":
    SCHEMA_FILE.write_text(print_sdl())
    print(f"wrote {SCHEMA_FILE}")
