// The model store, for functions (scripts have none): a function saves a model in one call and
// loads it in later calls from the same Qlik app; the operator's shared models are read by every
// app. `save`/`load` keep any JSON value; `saveBytes`/`loadBytes` keep bytes (a Uint8Array).
//
//   import { save, load } from "../sdk/models.js";
//   aggregation("Train", { Values: "numeric" }, "numeric", (values) => { save("weights", values); return values.length; });
//
// A refusal throws a ModelStoreError whose `fault` is "name", "limit", "missing", "storage" or
// "off"; a function that lets it through fails the call with the refusal's own gRPC code.
import * as store from "qlik:sse/models@0.1.0";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class ModelStoreError extends Error {
  constructor(message, fault) {
    super(message);
    this.name = "ModelStoreError";
    this.fault = fault;
  }
}

function stored(f) {
  try {
    return f();
  } catch (e) {
    const refusal = e?.payload;
    if (refusal && typeof refusal.fault === "string") throw new ModelStoreError(refusal.message, refusal.fault);
    throw e;
  }
}

// Keeps `bytes` as the model `name` of the calling Qlik app, replacing one of that name.
export function saveBytes(name, bytes) {
  stored(() => store.save(String(name), bytes));
}

// The bytes of the calling app's model `name`, else of the operator's shared model `name`.
export function loadBytes(name) {
  return stored(() => store.load(String(name)));
}

// Keeps `value`, as JSON, as the model `name` of the calling Qlik app.
export function save(name, value) {
  saveBytes(name, encoder.encode(JSON.stringify(value)));
}

// The value saved as `name` by this app (or shared by the operator).
export function load(name) {
  return JSON.parse(decoder.decode(loadBytes(name)));
}

// The calling app's models, then the shared ones: { name, bytes, shared, modified }.
export function models() {
  return stored(() => store.list()).map((m) => ({
    name: m.name,
    bytes: Number(m.bytes),
    shared: m.shared,
    modified: Number(m.modified),
  }));
}
