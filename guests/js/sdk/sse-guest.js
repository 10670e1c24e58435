// sse-wasm functions in JavaScript: declare plain functions, and this module serves them
// through the `qlik:sse/functions` interface (export `functions` from your app).
//
//   import { scalar, aggregation, functions } from "./sse-guest.js";
//   scalar("Clamp", { value: "numeric", low: "numeric", high: "numeric" }, "numeric",
//          (value, low, high) => Math.min(Math.max(value, low), high));
//   export { functions };
//
// Types are "numeric" (a number; NaN is Qlik's null), "text" (a string) and "dual" (an object
// { number, text }). A `scalar` function takes one value per parameter and answers one value; a
// `tensor` takes whole columns (arrays) of a batch and answers an array as long; an
// `aggregation` takes the columns of every row of the call and answers one value. A thrown
// error fails the call with its message, which Qlik shows to the user.

const registry = [];
const decoder = new TextDecoder();
const encoder = new TextEncoder();

function declare(functionType, mode, name, params, returns, run, options = {}) {
  for (const type of [...Object.values(params), returns]) {
    if (!["numeric", "text", "dual"].includes(type)) {
      throw new Error(`${name}: unknown type ${type}; use "numeric", "text" or "dual"`);
    }
  }
  registry.push({
    definition: {
      name,
      description: options.description ?? "",
      functionType,
      returnType: returns,
      params: Object.entries(params).map(([n, dataType]) => ({ name: n, dataType })),
      mode,
      table: undefined,
      cacheable: options.cacheable ?? true,
    },
    run,
    returns,
  });
}

/** A row-by-row function: one value per parameter in, one value out. */
export function scalar(name, params, returns, run, options) {
  declare("scalar", "per-batch", name, params, returns, run, options);
}

/** A column function: one array per parameter in, an array as long out, per batch. */
export function tensor(name, params, returns, run, options) {
  declare("tensor", "per-batch", name, params, returns, run, options);
}

/** An aggregation: the columns of every row of the call in, one value out. */
export function aggregation(name, params, returns, run, options) {
  declare("aggregation", "per-call", name, params, returns, run, options);
}

/** A WIT `strings` (one UTF-8 buffer plus offsets) as an array of strings. */
export function texts({ data, offsets }) {
  const out = new Array(offsets.length - 1);
  for (let i = 0; i + 1 < offsets.length; i++) {
    out[i] = decoder.decode(data.subarray(offsets[i], offsets[i + 1]));
  }
  return out;
}

/** An array of values as a WIT `strings`; null and undefined are empty. */
export function strings(values) {
  const encoded = values.map((v) => encoder.encode(String(v ?? "")));
  const offsets = new Uint32Array(encoded.length + 1);
  let end = 0;
  encoded.forEach((e, i) => {
    end += e.length;
    offsets[i + 1] = end;
  });
  const data = new Uint8Array(end);
  encoded.forEach((e, i) => data.set(e, offsets[i]));
  return { data, offsets };
}

function values(column) {
  switch (column.tag) {
    case "numeric":
      return Array.from(column.val);
    case "text":
      return texts(column.val);
    default: {
      const t = texts(column.val.strings);
      return Array.from(column.val.numbers, (number, i) => ({ number, text: t[i] }));
    }
  }
}

function column(vals, type) {
  switch (type) {
    case "numeric":
      return { tag: "numeric", val: Float64Array.from(vals, (v) => (v == null ? NaN : Number(v))) };
    case "text":
      return { tag: "text", val: strings(vals) };
    default: {
      const duals = vals.map((v) => (typeof v === "object" && v !== null ? v : { number: Number(v), text: String(v) }));
      return {
        tag: "dual",
        val: { numbers: Float64Array.from(duals, (d) => d.number), strings: strings(duals.map((d) => d.text)) },
      };
    }
  }
}

// Turns whatever user code threw into the `err` text the host reports to Qlik.
function failing(f) {
  try {
    return f();
  } catch (e) {
    throw e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  }
}

class Invocation {
  constructor(index) {
    this.f = registry[index];
    this.columns = this.f.definition.params.map(() => []);
  }
  update(input) {
    return failing(() => {
      input.columns.forEach((c, i) => this.columns[i].push(...values(c)));
      return { rows: 0, columns: [column([], this.f.returns)] };
    });
  }
  finish() {
    return failing(() => ({ rows: 1, columns: [column([this.f.run(...this.columns)], this.f.returns)] }));
  }
}

/** The `functions` interface serving every declared function; export it from your app. */
export const functions = {
  describe() {
    return registry.map((f) => f.definition);
  },
  call(index, input) {
    return failing(() => {
      const f = registry[index];
      const columns = input.columns.map(values);
      let answer;
      if (f.definition.functionType === "scalar") {
        answer = new Array(input.rows);
        for (let r = 0; r < input.rows; r++) answer[r] = f.run(...columns.map((c) => c[r]));
      } else {
        answer = Array.from(f.run(...columns));
        if (answer.length !== input.rows) {
          throw new Error(`${f.definition.name} answered ${answer.length} rows for ${input.rows}`);
        }
      }
      return { rows: input.rows, columns: [column(answer, f.returns)] };
    });
  },
  Invocation,
};
