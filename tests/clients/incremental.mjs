// Runs one query with @defer or @stream through a real client against the gateway at the
// URL given, and prints as JSON every result the client gave the application (when, and
// what), the same query's answer without the directives, and each HTTP response's type.
//
//   node incremental.mjs apollo|urql|sse URL TOKEN 'QUERY'
//
// Apollo Client 4 (its GraphQL17Alpha9Handler: graphql-core 3.3's format over
// multipart/mixed), urql (multipart/mixed) and graphql-sse's client (text/event-stream,
// each payload as it came). tests/system/test_incremental_delivery.py reads the output.
const [kind, url, token, query] = process.argv.slice(2);
const plainQuery = query
  .replace(/ @stream(\([^)]*\))?/g, "")
  .replace(/\.\.\. @defer(\([^)]*\))? \{/g, "... {");
const started = performance.now();
const since = () => Math.round(performance.now() - started);

const responses = [];
async function recordingFetch(input, init = {}) {
  const response = await fetch(input, init);
  responses.push({
    accept: new Headers(init.headers).get("accept"),
    status: response.status,
    contentType: response.headers.get("content-type"),
  });
  return response;
}

async function withApollo() {
  const { ApolloClient, HttpLink, InMemoryCache, gql } = await import("@apollo/client");
  const { GraphQL17Alpha9Handler } = await import("@apollo/client/incremental");
  const client = new ApolloClient({
    link: new HttpLink({ uri: url, fetch: recordingFetch, headers: { "X-Auth-Token": token } }),
    cache: new InMemoryCache(),
    incrementalHandler: new GraphQL17Alpha9Handler(),
  });
  const results = [];
  await new Promise((resolve, reject) => {
    const observable = client.watchQuery({ query: gql(query), fetchPolicy: "network-only" });
    const subscription = observable.subscribe({
      next(result) {
        results.push({ at: since(), state: result.dataState, data: result.data ?? null });
        if (result.error) results[results.length - 1].error = String(result.error);
        // Ready (7) once the last payload is in: a stream's data is "complete" before.
        if (result.networkStatus === 7 || result.error) {
          subscription.unsubscribe();
          resolve();
        }
      },
      error: reject,
    });
  });
  const whole = await client.query({ query: gql(plainQuery), fetchPolicy: "network-only" });
  return { results, whole: whole.data };
}

async function withUrql() {
  const { Client, fetchExchange, gql } = await import("@urql/core");
  const client = new Client({
    url,
    fetch: recordingFetch,
    fetchOptions: { headers: { "X-Auth-Token": token } },
    requestPolicy: "network-only",
    preferGetMethod: false,
    exchanges: [fetchExchange],
  });
  const results = [];
  await new Promise((resolve) => {
    const { unsubscribe } = client.query(gql(query), {}).subscribe((result) => {
      results.push({ at: since(), state: result.hasNext ? "streaming" : "complete", data: result.data ?? null });
      if (result.error) results[results.length - 1].error = String(result.error);
      if (!result.hasNext) {
        Promise.resolve().then(() => unsubscribe());
        resolve();
      }
    });
  });
  const whole = await client.query(gql(plainQuery), {}).toPromise();
  return { results, whole: whole.data };
}

async function withSse() {
  const { createClient } = await import("graphql-sse");
  const client = createClient({ url, fetchFn: recordingFetch, headers: { "X-Auth-Token": token } });
  const results = [];
  for await (const payload of client.iterate({ query })) {
    results.push({ at: since(), payload });
  }
  let whole = null;
  for await (const payload of client.iterate({ query: plainQuery })) {
    whole = payload.data;
  }
  client.dispose();
  return { results, whole };
}

const run = { apollo: withApollo, urql: withUrql, sse: withSse }[kind];
const { results, whole } = await run();
process.stdout.write(JSON.stringify({ results, whole, responses }));
