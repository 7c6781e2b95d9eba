// Runs one query three times through a real client's automatic persisted queries, against
// the gateway at the URL given, and prints as JSON what each run answered and every HTTP
// request the client made (method, whether it carried the document and the hash, status).
//
//   node persisted.mjs apollo|urql URL TOKEN post|get
//
// Apollo Client 4's PersistedQueryLink and urql's persistedExchange, from npm: what a
// frontend runs. tests/system/test_graphql_over_http.py reads the output.
import { createHash } from "node:crypto";

const [kind, url, token, method] = process.argv.slice(2);
const QUERY = "query Persisted($first: Int) { subscriptions(first: $first) { totalCount nodes { id } } }";
const sha256 = (text) => createHash("sha256").update(text).digest("hex");

const requests = [];
async function recordingFetch(input, init = {}) {
  const target = new URL(typeof input === "string" ? input : input.url);
  const body = init.body ? JSON.parse(init.body) : null;
  const extensions = body ? body.extensions : JSON.parse(target.searchParams.get("extensions") || "null");
  const query = body ? body.query : target.searchParams.get("query");
  const response = await fetch(input, init);
  requests.push({
    method: init.method || "GET",
    query: typeof query === "string",
    hash: Boolean(extensions && extensions.persistedQuery && extensions.persistedQuery.sha256Hash),
    status: response.status,
    contentType: response.headers.get("content-type"),
  });
  return response;
}

async function withApollo() {
  const { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } = await import("@apollo/client");
  const { PersistedQueryLink } = await import("@apollo/client/link/persisted-queries");
  const client = new ApolloClient({
    link: ApolloLink.from([
      new PersistedQueryLink({ sha256, useGETForHashedQueries: method === "get" }),
      new HttpLink({ uri: url, fetch: recordingFetch, headers: { "X-Auth-Token": token } }),
    ]),
    cache: new InMemoryCache(),
  });
  const document = gql(QUERY);
  const answers = [];
  for (const first of [2, 2, 3]) {
    try {
      const result = await client.query({ query: document, variables: { first }, fetchPolicy: "network-only" });
      answers.push({ data: result.data ?? null, error: result.error ? String(result.error) : null });
    } catch (error) {
      answers.push({ data: null, error: String(error) });
    }
  }
  return answers;
}

async function withUrql() {
  const { Client, fetchExchange, gql } = await import("@urql/core");
  const { persistedExchange } = await import("@urql/exchange-persisted");
  const client = new Client({
    url,
    fetch: recordingFetch,
    fetchOptions: { headers: { "X-Auth-Token": token } },
    requestPolicy: "network-only",
    preferGetMethod: false,
    exchanges: [
      persistedExchange({
        generateHash: async (text) => sha256(text),
        preferGetForPersistedQueries: method === "get",
      }),
      fetchExchange,
    ],
  });
  const document = gql(QUERY);
  const answers = [];
  for (const first of [2, 2, 3]) {
    const result = await client.query(document, { first }).toPromise();
    answers.push({ data: result.data ?? null, error: result.error ? String(result.error) : null });
  }
  return answers;
}

const answers = kind === "apollo" ? await withApollo() : await withUrql();
process.stdout.write(JSON.stringify({ answers, requests }));
