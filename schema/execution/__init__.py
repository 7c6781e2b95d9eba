"""The executor: graphql-core's, with a lookahead and a shortcut for plain objects."""
