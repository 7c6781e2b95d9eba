// Runs graphql-http's server audits against the URL given, printing the results as JSON.
import { auditServer } from "graphql-http";

const url = process.argv[2];
const results = await auditServer({ url });
const out = [];
for (const result of results) {
  out.push({
    id: result.id,
    name: result.name,
    status: result.status,
    reason: result.status === "ok" ? null : result.reason,
  });
}
process.stdout.write(JSON.stringify(out));
