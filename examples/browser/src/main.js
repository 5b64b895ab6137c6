// Fader flags in a web page, with nothing of Fader's own on the client: OpenFeature's web SDK and
// its stock OFREP provider talk to Fader's `/ofrep/v1` endpoints with a client key.
//
// The provider fetches every flag the key may see in one bulk request, then evaluates from that
// result without further requests. It hears of changes over the event stream that Fader
// advertises in the bulk response (server-sent events), or by polling every `pollInterval`
// milliseconds when told to (`changes=polling`) or when the stream fails. Either way it
// re-fetches and emits `ConfigurationChanged`, and the page renders again.
//
// Settings come from the page's query string (the form in index.html writes them), so one
// built bundle serves any Fader server, key and flag list. Client keys are public by design
// (they ship in every visitor's browser), which is why one may travel in a URL.

import { OFREPWebProvider } from "@openfeature/ofrep-web-provider";
import { OpenFeature, ProviderEvents } from "@openfeature/web-sdk";

const DEFAULTS = {
  fader: "http://127.0.0.1:8400",
  user: "visitor-1",
  flags: "new-checkout,checkout-button-copy:string,search-page-size:number",
  changes: "sse",
  poll: "5000",
};
// The value an application's code falls back to; shown when a flag cannot be evaluated (a
// server-only flag is not found with a client key, so the page shows this).
const CODE_DEFAULTS = { boolean: false, string: "", number: 0, object: {} };
const DETAILS = {
  boolean: (client, key) => client.getBooleanDetails(key, CODE_DEFAULTS.boolean),
  string: (client, key) => client.getStringDetails(key, CODE_DEFAULTS.string),
  number: (client, key) => client.getNumberDetails(key, CODE_DEFAULTS.number),
  object: (client, key) => client.getObjectDetails(key, CODE_DEFAULTS.object),
};

/** The settings in the query string, each defaulted; `flags` is "key[:type],...". */
function readSettings(search) {
  const params = new URLSearchParams(search);
  const get = (name) => (params.get(name) || DEFAULTS[name] || "").trim();
  const flags = get("flags")
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean)
    .map((item) => {
      const [key, type = "boolean"] = item.split(":").map((part) => part.trim());
      return { key, type: type in DETAILS ? type : "boolean" };
    });
  const poll = Number.parseInt(get("poll"), 10);
  return {
    fader: get("fader").replace(/\/+$/, ""),
    key: get("key"),
    user: get("user"),
    flags,
    changes: get("changes") === "polling" ? "polling" : "sse",
    pollInterval: Number.isFinite(poll) && poll > 0 ? poll : Number(DEFAULTS.poll),
  };
}

function fillForm(form, settings) {
  form.elements.fader.value = settings.fader;
  form.elements.key.value = settings.key;
  form.elements.user.value = settings.user;
  form.elements.flags.value = settings.flags.map((f) => `${f.key}:${f.type}`).join(",");
  form.elements.changes.value = settings.changes;
  form.elements.poll.value = String(settings.pollInterval);
}

function cell(row, name, text) {
  const td = document.createElement("td");
  td.className = name;
  td.textContent = text; // never innerHTML: flag values and query strings are untrusted
  row.append(td);
}

function render(client, settings) {
  const body = document.getElementById("flag-rows");
  const rows = settings.flags.map(({ key, type }) => {
    const details = DETAILS[type](client, key);
    const row = document.createElement("tr");
    row.dataset.flag = key;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = key;
    row.append(th);
    cell(row, "value", JSON.stringify(details.value));
    cell(row, "variant", details.variant ?? "");
    cell(row, "reason", details.reason ?? "");
    cell(row, "error", details.errorCode ?? "");
    return row;
  });
  body.replaceChildren(...rows);
}

function setStatus(text, state) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.dataset.state = state;
}

async function main() {
  const settings = readSettings(window.location.search);
  fillForm(document.getElementById("settings"), settings);
  if (!settings.key) {
    setStatus("Enter a client key (fdr_cli_...) and show the flags.", "idle");
    return;
  }

  const provider = new OFREPWebProvider({
    baseUrl: settings.fader,
    headers: [["Authorization", `Bearer ${settings.key}`]],
    pollInterval: settings.pollInterval,
    changeDetection: settings.changes,
  });
  const client = OpenFeature.getClient();
  let changes = 0;

  client.addHandler(ProviderEvents.Ready, () => {
    setStatus("Ready", "ready");
    render(client, settings);
  });
  client.addHandler(ProviderEvents.ConfigurationChanged, (event) => {
    changes += 1;
    const changed = document.getElementById("change-log");
    changed.textContent = `${changes} change(s) seen; last: ${(event?.flagsChanged ?? []).join(", ")}`;
    changed.dataset.count = String(changes);
    setStatus("Ready", "ready"); // fresh flags arrived, so whatever was stale is current again
    render(client, settings);
  });
  client.addHandler(ProviderEvents.Stale, (event) => {
    setStatus(`Stale: ${event?.message ?? "reconnecting"}`, "stale");
  });
  client.addHandler(ProviderEvents.Error, (event) => {
    setStatus(`Error: ${event?.message ?? "the provider failed"}`, "error");
    render(client, settings);
  });

  await OpenFeature.setContext({ targetingKey: settings.user });
  setStatus("Connecting...", "connecting");
  try {
    await OpenFeature.setProviderAndWait(provider);
  } catch (error) {
    setStatus(`Error: ${error?.message ?? error}`, "error");
    render(client, settings);
  }
}

main();
