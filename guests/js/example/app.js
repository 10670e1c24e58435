// Example sse-wasm functions in JavaScript: a scalar, an aggregation and a string function, and a
// pair that keeps a model between calls (saved by a load script, used by a chart).
import { load, save } from "../sdk/models.js";
import { aggregation, functions, scalar } from "../sdk/sse-guest.js";

scalar("Clamp", { Value: "numeric", Low: "numeric", High: "numeric" }, "numeric",
  (value, low, high) => {
    if (low > high) throw new RangeError(`Low (${low}) is above High (${high})`);
    return Math.min(Math.max(value, low), high);
  },
  { description: "Limits a value to the range from Low to High." });

aggregation("Spread", { Values: "numeric" }, "numeric",
  (values) => {
    const present = values.filter((v) => !Number.isNaN(v));
    return present.length ? Math.max(...present) - Math.min(...present) : NaN;
  },
  { description: "The largest value minus the smallest; NaN when there are none." });

scalar("Reverse", { Text: "text" }, "text",
  (text) => Array.from(text).reverse().join(""),
  { description: "The text backwards, by characters." });

aggregation("SaveRange", { Name: "text", Values: "numeric" }, "numeric",
  (names, values) => {
    const present = values.filter((v) => !Number.isNaN(v));
    save(names[0] ?? "", { low: Math.min(...present), high: Math.max(...present) });
    return present.length;
  },
  { description: "Keeps the range of the values as model Name (the first row's) of this Qlik app.", cacheable: false });

scalar("ClampToSaved", { Value: "numeric", Name: "text" }, "numeric",
  (value, name) => {
    const { low, high } = load(name);
    return Math.min(Math.max(value, low), high);
  },
  { description: "Limits a value to the range SaveRange kept as model Name.", cacheable: false });

export { functions };
