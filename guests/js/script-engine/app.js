// A JavaScript script engine for Qlik's script functions (ScriptEval, ScriptAggr and their `Str`
// and `Ex` variants), with the conventions of sse-wasm's Python engine:
//
// - `args[i]` is the i-th parameter's column, an array with one value per row: a number for a
//   numeric parameter, a string for a text one, and for a dual one a pair of arrays
//   `[numbers, texts]`;
// - the script is one JavaScript expression, whose value is the answer, or a function body that
//   `return`s it. An array answers one row per element, anything else one row; a row that is
//   itself an array answers several columns. A dual answer value is `{ number, text }`.
//
// Scripts run in strict mode, so an undeclared name is an error rather than a global. Every
// evaluation runs in a fresh instance of this engine: nothing one script does is seen by the next.

import { strings, texts } from "../sdk/sse-guest.js";

// What a thrown value becomes: the `err` text Qlik shows, `Name: message`, and for an error in
// the script itself `(line N)` counted in the script's own text (`lines` long, `offset` lines
// of the Function's own come first).
function message(e, where) {
  if (!(e instanceof Error)) return `Error: ${String(e)}`;
  let line = "";
  if (where && typeof e.lineNumber === "number" && e.lineNumber > where.offset) {
    line = ` (line ${Math.min(e.lineNumber - where.offset, where.lines)})`;
  }
  return `${e.name}: ${e.message}${line}`;
}

// The script as a function of `args`: an expression if it parses as one, else a function body.
// A first line `#!js` chooses the engine; it is blanked (lines keep their numbers). `offset` is
// how many lines SpiderMonkey counts before the script's first line: the Function's own two
// header lines, "use strict", and for an expression the `return (` line.
function compile(text) {
  const script = text.startsWith("#!") ? text.replace(/^#![^\n]*/, "") : text;
  try {
    return { run: new Function("args", `"use strict";\nreturn (\n${script}\n);`), offset: 4 };
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
  }
  return { run: new Function("args", `"use strict";\n${script}`), offset: 3 };
}

function number(v) {
  if (v === null || v === undefined) return NaN;
  if (typeof v === "string") {
    throw new TypeError(`the script returned the text ${JSON.stringify(v)} where a number is expected (use ScriptEvalStr)`);
  }
  return Number(v);
}

function text(v) {
  return v === null || v === undefined ? "" : String(v);
}

function dual(v) {
  if (v !== null && typeof v === "object" && "number" in v && "text" in v) return [number(v.number), text(v.text)];
  return [number(v), text(v)];
}

function column(values, kind) {
  switch (kind) {
    case "numeric":
      return { tag: "numeric", val: Float64Array.from(values, number) };
    case "text":
      return { tag: "text", val: strings(values.map(text)) };
    default: {
      const pairs = values.map(dual);
      return {
        tag: "dual",
        val: { numbers: Float64Array.from(pairs, (p) => p[0]), strings: strings(pairs.map((p) => p[1])) },
      };
    }
  }
}

function isRows(v) {
  return Array.isArray(v) || ArrayBuffer.isView(v);
}

function answer(result, kind) {
  const rows = isRows(result) ? Array.from(result) : [result];
  if (!rows.some(isRows)) return { rows: rows.length, columns: [column(rows, kind)] };
  const table = rows.map((r) => (isRows(r) ? Array.from(r) : [r]));
  const width = table[0].length;
  table.forEach((row, i) => {
    if (row.length !== width) throw new RangeError(`row ${i + 1} of the answer has ${row.length} columns, row 1 has ${width}`);
  });
  if (width === 0) throw new RangeError("the answer has rows without columns");
  return { rows: table.length, columns: Array.from({ length: width }, (_, c) => column(table.map((r) => r[c]), kind)) };
}

class Evaluation {
  constructor(script) {
    this.kind = script.returnType;
    this.columns = script.params.map((p) => (p.dataType === "dual" ? [[], []] : []));
    this.error = undefined;
    this.lines = script.text.split("\n").length;
    try {
      ({ run: this.run, offset: this.offset } = compile(script.text));
    } catch (e) {
      this.error = message(e, { offset: 3, lines: this.lines });
    }
  }

  update(input) {
    if (this.error) throw this.error;
    input.columns.forEach((c, i) => {
      const collected = this.columns[i];
      if (collected === undefined) return;
      switch (c.tag) {
        case "numeric":
          for (const v of c.val) collected.push(v);
          break;
        case "text":
          for (const v of texts(c.val)) collected.push(v);
          break;
        default:
          for (const v of c.val.numbers) collected[0].push(v);
          for (const v of texts(c.val.strings)) collected[1].push(v);
      }
    });
  }

  finish() {
    if (this.error) throw this.error;
    let result;
    try {
      result = this.run(this.columns);
    } catch (e) {
      throw message(e, { offset: this.offset, lines: this.lines });
    }
    try {
      return answer(result, this.kind);
    } catch (e) {
      throw message(e);
    }
  }
}

/** The `scripts` interface. */
export const scripts = {
  language() {
    return "js";
  },
  Evaluation,
};
