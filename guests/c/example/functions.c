// Example sse-wasm functions in C, on the bindings `wit-bindgen c` generates for the plugin world
// (gen/plugin.h): a scalar, an aggregation and a string function.
//
// Ownership follows wit-bindgen's C rules: arguments belong to the callee (free them), and what
// a function returns is allocated with malloc and freed by the generated code after the call.

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

typedef qlik_sse_types_function_def_t function_def_t;
typedef qlik_sse_types_batch_t batch_t;
typedef qlik_sse_types_column_t column_t;

enum { HYPOTENUSE, SUM_OF_SQUARES, TRIM, FUNCTIONS };

static void declare(function_def_t *def, const char *name, const char *description,
                    qlik_sse_types_function_type_t type, qlik_sse_types_data_type_t returns,
                    qlik_sse_types_mode_t mode, size_t params, const char **names,
                    qlik_sse_types_data_type_t param_type) {
  memset(def, 0, sizeof *def);
  plugin_string_dup(&def->name, name);
  plugin_string_dup(&def->description, description);
  def->function_type = type;
  def->return_type = returns;
  def->mode = mode;
  def->cacheable = true;
  def->params.len = params;
  def->params.ptr = calloc(params, sizeof *def->params.ptr);
  for (size_t i = 0; i < params; i++) {
    plugin_string_dup(&def->params.ptr[i].name, names[i]);
    def->params.ptr[i].data_type = param_type;
  }
}

void exports_qlik_sse_functions_describe(exports_qlik_sse_functions_list_function_def_t *ret) {
  static const char *two[] = {"A", "B"}, *values[] = {"Values"}, *text[] = {"Text"};
  ret->len = FUNCTIONS;
  ret->ptr = calloc(FUNCTIONS, sizeof *ret->ptr);
  declare(&ret->ptr[HYPOTENUSE], "Hypotenuse", "The length of the hypotenuse of legs A and B.",
          QLIK_SSE_TYPES_FUNCTION_TYPE_SCALAR, QLIK_SSE_TYPES_DATA_TYPE_NUMERIC,
          QLIK_SSE_TYPES_MODE_PER_BATCH, 2, two, QLIK_SSE_TYPES_DATA_TYPE_NUMERIC);
  declare(&ret->ptr[SUM_OF_SQUARES], "SumOfSquares", "The sum of the squares of the values (NaN skipped).",
          QLIK_SSE_TYPES_FUNCTION_TYPE_AGGREGATION, QLIK_SSE_TYPES_DATA_TYPE_NUMERIC,
          QLIK_SSE_TYPES_MODE_PER_CALL, 1, values, QLIK_SSE_TYPES_DATA_TYPE_NUMERIC);
  declare(&ret->ptr[TRIM], "Trim", "The text without leading and trailing white space.",
          QLIK_SSE_TYPES_FUNCTION_TYPE_SCALAR, QLIK_SSE_TYPES_DATA_TYPE_TEXT,
          QLIK_SSE_TYPES_MODE_PER_BATCH, 1, text, QLIK_SSE_TYPES_DATA_TYPE_TEXT);
}

// A batch of `rows` rows with one column, whose tag the caller sets and fills.
static column_t *one_column(batch_t *ret, uint32_t rows) {
  ret->rows = rows;
  ret->columns.len = 1;
  ret->columns.ptr = calloc(1, sizeof *ret->columns.ptr);
  return ret->columns.ptr;
}

static void numbers(batch_t *ret, uint32_t rows, double *values) {
  column_t *column = one_column(ret, rows);
  column->tag = QLIK_SSE_TYPES_COLUMN_NUMERIC;
  column->val.numeric.ptr = values;
  column->val.numeric.len = rows;
}

static void hypotenuse(batch_t *input, batch_t *ret) {
  double *a = input->columns.ptr[0].val.numeric.ptr, *b = input->columns.ptr[1].val.numeric.ptr;
  double *out = malloc(sizeof(double) * (input->rows ? input->rows : 1));
  for (uint32_t i = 0; i < input->rows; i++) out[i] = hypot(a[i], b[i]);
  numbers(ret, input->rows, out);
}

static void trim(batch_t *input, batch_t *ret) {
  qlik_sse_types_strings_t *in = &input->columns.ptr[0].val.text;
  column_t *column = one_column(ret, input->rows);
  column->tag = QLIK_SSE_TYPES_COLUMN_TEXT;
  qlik_sse_types_strings_t *out = &column->val.text;
  out->data.ptr = malloc(in->data.len ? in->data.len : 1);
  out->offsets.ptr = malloc(sizeof(uint32_t) * (input->rows + 1));
  out->offsets.len = input->rows + 1;
  uint32_t end = 0;
  out->offsets.ptr[0] = 0;
  for (uint32_t i = 0; i < input->rows; i++) {
    uint32_t from = in->offsets.ptr[i], to = in->offsets.ptr[i + 1];
    while (from < to && isspace(in->data.ptr[from])) from++;
    while (to > from && isspace(in->data.ptr[to - 1])) to--;
    memcpy(out->data.ptr + end, in->data.ptr + from, to - from);
    end += to - from;
    out->offsets.ptr[i + 1] = end;
  }
  out->data.len = end;
}

bool exports_qlik_sse_functions_call(uint32_t function, batch_t *input, batch_t *ret, plugin_string_t *err) {
  bool ok = true;
  switch (function) {
    case HYPOTENUSE: hypotenuse(input, ret); break;
    case TRIM: trim(input, ret); break;
    default:
      plugin_string_dup(err, "not a per-batch function");
      ok = false;
  }
  qlik_sse_types_batch_free(input);
  return ok;
}

// The state of one SumOfSquares call.
struct exports_qlik_sse_functions_invocation_t {
  double sum;
};

exports_qlik_sse_functions_own_invocation_t exports_qlik_sse_functions_constructor_invocation(uint32_t function) {
  (void)function;
  exports_qlik_sse_functions_invocation_t *state = calloc(1, sizeof *state);
  return exports_qlik_sse_functions_invocation_new(state);
}

void exports_qlik_sse_functions_invocation_destructor(exports_qlik_sse_functions_invocation_t *state) {
  free(state);
}

bool exports_qlik_sse_functions_method_invocation_update(exports_qlik_sse_functions_borrow_invocation_t state,
                                                          batch_t *input, batch_t *ret, plugin_string_t *err) {
  (void)err;
  plugin_list_f64_t *values = &input->columns.ptr[0].val.numeric;
  for (size_t i = 0; i < values->len; i++) {
    if (!isnan(values->ptr[i])) state->sum += values->ptr[i] * values->ptr[i];
  }
  qlik_sse_types_batch_free(input);
  numbers(ret, 0, NULL);
  return true;
}

bool exports_qlik_sse_functions_method_invocation_finish(exports_qlik_sse_functions_borrow_invocation_t state,
                                                          batch_t *ret, plugin_string_t *err) {
  (void)err;
  double *out = malloc(sizeof(double));
  *out = state->sum;
  numbers(ret, 1, out);
  return true;
}
