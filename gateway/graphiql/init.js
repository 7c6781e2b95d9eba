// Mounts GraphiQL (the offline bundle beside this file) against the gateway's endpoint.
// Kept in a file, not inline, so the page's CSP can forbid inline scripts.
(function () {
  "use strict";
  var root = document.getElementById("graphiql");
  var fetcher = GraphiQL.createFetcher({ url: root.getAttribute("data-endpoint") });
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: root.getAttribute("data-default-query"),
      defaultHeaders: root.getAttribute("data-default-headers"),
      defaultEditorToolsVisibility: "headers",
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
    })
  );
})();
