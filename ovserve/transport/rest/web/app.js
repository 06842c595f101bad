// ovserve's page: ask a model (streamed over SSE from /v1/chat/completions), read the answer's
// sources (in the reranker's order, with its scores, when the graph reranks) and the embedding
// model the store was built with, upload documents into a RAG graph's store, see what is loaded.
// No framework, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
let ragModels = [];
const storeInfo = {}; // RAG model -> its GET /v1/rag/{model}/documents answer

// A server started with --api_key answers 401 without it: ask once, keep it for this tab.
async function authorized(path, options = {}) {
  const send = () => {
    const key = sessionStorage.getItem("ovserve-api-key");
    const headers = { ...(options.headers || {}) };
    if (key) headers.Authorization = `Bearer ${key}`;
    return fetch(path, { ...options, headers });
  };
  let response = await send();
  if (response.status === 401) {
    const key = window.prompt("This server needs an API key:");
    if (key) {
      sessionStorage.setItem("ovserve-api-key", key);
      response = await send();
    }
  }
  return response;
}

async function api(path, options) {
  const response = await authorized(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (body.error && (body.error.message || body.error)) || response.statusText;
    throw new Error(`${response.status}: ${message}`);
  }
  return body;
}

async function loadModels() {
  const { data } = await api("/v1/models");
  const select = $("model");
  const previous = select.value;
  select.innerHTML = "";
  $("models").innerHTML = "";
  ragModels = [];
  for (const model of data) {
    const item = document.createElement("li");
    item.textContent = model.parent ? `${model.id} (adapter of ${model.parent})` : model.id;
    $("models").appendChild(item);
    if (model.id.includes("minilm") || model.id.includes("embed")) continue;
    const option = document.createElement("option");
    option.value = option.textContent = model.id;
    select.appendChild(option);
    if (model.id === "rag" || model.id.startsWith("rag")) ragModels.push(model.id);
  }
  select.value = previous || ragModels[0] || (data[0] && data[0].id) || "";
  $("status").textContent = `${data.length} models loaded`;
}

async function loadStoreInfo(model) {
  storeInfo[model] = await api(`/v1/rag/${model}/documents`);
  return storeInfo[model];
}

// "Store built with MODEL (SOURCE)", and a warning when some chunks were embedded by another
// model (the store is re-embedded by the next ingestion: scripts/ingest.py or an upload)
function showStoreModel(info) {
  const line = $("store-model");
  const model = info.embedding_model || {};
  const others = Object.entries(info.embedded_with || {}).filter(([id]) => id !== model.id);
  const origin = model.source ? ` (${model.source})` : "";
  line.className = others.length ? "muted stale" : "muted";
  if (!info.chunks) {
    line.textContent = `Embedding model: ${model.id}${origin}; the store is empty`;
  } else if (!others.length) {
    line.textContent = `Store built with embedding model ${model.id}${origin}`;
  } else {
    const stale = others.map(([id, n]) => `${n} by ${id || "an unrecorded model"}`).join(", ");
    line.textContent = `Embedding model ${model.id}${origin}; chunks embedded by another ` +
      `model: ${stale} (the next ingestion embeds them again)`;
  }
}

async function loadDocuments() {
  const list = $("documents");
  list.innerHTML = "";
  if (!ragModels.length) return;
  const info = await loadStoreInfo(ragModels[0]);
  for (const [name, count] of Object.entries(info.documents)) {
    const item = document.createElement("li");
    item.textContent = `${name} (${count} chunks)`;
    list.appendChild(item);
  }
  if (!info.chunks) list.innerHTML = '<li class="muted">no documents yet</li>';
  showStoreModel(info);
}

// The sources in the order the graph used them: the reranker's when it reranks (then each
// shows its rerank score beside the vector store's similarity), else the vector store's.
function showSources(sources, model) {
  const list = $("sources");
  list.innerHTML = "";
  const info = storeInfo[model] || {};
  const reranked = sources.some((source) => source.rerank_score !== undefined);
  const embedding = info.embedding_model ? ` with ${info.embedding_model.id}` : "";
  $("sources-note").textContent = reranked
    ? `Sources reranked by ${info.reranker || "the reranker"} (best first); retrieved${embedding}`
    : `Sources by vector similarity (best first); retrieved${embedding}`;
  for (const source of sources) {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.className = "source";
    name.textContent = source.source + (source.section ? ` \u00a7 ${source.section}` : "");
    const scores = document.createElement("span");
    scores.className = "scores";
    scores.textContent = reranked
      ? ` rerank score ${source.rerank_score.toFixed(3)}, vector score ${source.score.toFixed(2)}`
      : ` score ${source.score.toFixed(2)}`;
    if (reranked) item.dataset.rerankScore = String(source.rerank_score);
    item.dataset.score = String(source.score);
    name.appendChild(scores);
    const snippet = document.createElement("div");
    snippet.className = "snippet";
    snippet.textContent = source.text.slice(0, 240) + (source.text.length > 240 ? "..." : "");
    item.append(name, snippet);
    list.appendChild(item);
  }
}

async function ask(event) {
  event.preventDefault();
  const answer = $("answer");
  answer.textContent = "";
  answer.className = "";
  $("sources").innerHTML = "";
  $("sources-note").textContent = "";
  $("ask-button").disabled = true;
  const model = $("model").value;
  try {
    if (ragModels.includes(model) && !storeInfo[model]) await loadStoreInfo(model);
    const response = await authorized("/v1/chat/completions", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model, stream: true, max_tokens: 200,
                             messages: [{ role: "user", content: $("question").value }] }),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(`${response.status}: ${(body.error && body.error.message) || ""}`);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const line = buffer.slice(0, end).trim();
        buffer = buffer.slice(end + 2);
        if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
        const event = JSON.parse(line.slice(6));
        if (event.error) throw new Error(event.error.message);
        if (event.sources) showSources(event.sources, model);
        const delta = event.choices && event.choices[0] && event.choices[0].delta;
        if (delta && delta.content) answer.textContent += delta.content;
      }
    }
  } catch (error) {
    answer.className = "error";
    answer.textContent = error.message;
  } finally {
    $("ask-button").disabled = false;
  }
}

async function upload(event) {
  event.preventDefault();
  const result = $("upload-result");
  result.textContent = "";
  result.className = "";
  const files = Array.from($("files").files);
  if (!files.length || !ragModels.length) {
    result.textContent = ragModels.length ? "choose files first" : "no RAG graph is served";
    return;
  }
  $("upload-button").disabled = true;
  const lines = [];
  for (const file of files) {
    try {
      const report = await api(`/v1/rag/${ragModels[0]}/documents/${encodeURIComponent(file.name)}`,
                               { method: "PUT", body: file });
      lines.push(`${file.name}: ${report.added} chunks added, ${report.unchanged} unchanged`);
    } catch (error) {
      lines.push(`${file.name}: ${error.message}`);
      result.className = "error";
    }
  }
  result.textContent = lines.join("\n");
  $("upload-button").disabled = false;
  await loadDocuments();
}

$("ask").addEventListener("submit", ask);
$("upload").addEventListener("submit", upload);
loadModels().then(loadDocuments).catch((error) => {
  $("status").textContent = `cannot list models: ${error.message}`;
});
