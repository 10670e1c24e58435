// Example sse-wasm functions in C, on the bindings `wit-bindgen c` generates for the plugin world
// (gen/plugin.h): a scalar, an aggregation and a string function, and a pair that keeps a model
// between calls through the model store (saved by a load script, used by a chart).
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

enum { HYPOTENUSE, SUM_OF_SQUARES, TRIM, SAVE_SUM_OF_SQUARES, SAVED_SUM_OF_SQUARES, FUNCTIONS };

enum { NUMERIC = QLIK_SSE_TYPES_DATA_TYPE_NUMERIC, TEXT = QLIK_SSE_TYPES_DATA_TYPE_TEXT };

static void declare(function_def_t *def, const char *name, const char *description,
                    qlik_sse_types_function_type_t type, qlik_sse_types_data_type_t returns,
                    qlik_sse_types_mode_t mode, size_t params, const char **names,
                    const qlik_sse_types_data_type_t *param_types) {
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
    def->params.ptr[i].data_type = param_types[i];
  }
}

void exports_qlik_sse_functions_describe(exports_qlik_sse_functions_list_function_def_t *ret) {
  static const char *two[] = {"A", "B"}, *values[] = {"Values"}, *text[] = {"Text"};
  static const char *save[] = {"Name", "Values"}, *name[] = {"Name"};
  static const qlik_sse_types_data_type_t numeric2[] = {NUMERIC, NUMERIC}, text1[] = {TEXT},
                                          text_numeric[] = {TEXT, NUMERIC};
  ret->len = FUNCTIONS;
  ret->ptr = calloc(FUNCTIONS, sizeof *ret->ptr);
  declare(&ret->ptr[HYPOTENUSE], "Hypotenuse", "The length of the hypotenuse of legs A and B.",
          QLIK_SSE_TYPES_FUNCTION_TYPE_SCALAR, NUMERIC, QLIK_SSE_TYPES_MODE_PER_BATCH, 2, two, numeric2);
  declare(&ret->ptr[SUM_OF_SQUARES], "SumOfSquares", "The sum of the squares of the values (NaN skipped).",
          QLIK_SSE_TYPES_FUNCTION_TYPE_AGGREGATION, NUMERIC, QLIK_SSE_TYPES_MODE_PER_CALL, 1, values, numeric2);
  declare(&ret->ptr[TRIM], "Trim", "The text without leading and trailing white space.",
          QLIK_SSE_TYPES_FUNCTION_TYPE_SCALAR, TEXT, QLIK_SSE_TYPES_MODE_PER_BATCH, 1, text, text1);
  declare(&ret->ptr[SAVE_SUM_OF_SQUARES], "SaveSumOfSquares",
          "Keeps the sum of the squares of the values as model Name (the first row's) of this Qlik app.",
          QLIK_SSE_TYPES_FUNCTION_TYPE_AGGREGATION, NUMERIC, QLIK_SSE_TYPES_MODE_PER_CALL, 2, save, text_numeric);
  declare(&ret->ptr[SAVED_SUM_OF_SQUARES], "SavedSumOfSquares", "The sum SaveSumOfSquares kept as model Name.",
          QLIK_SSE_TYPES_FUNCTION_TYPE_SCALAR, NUMERIC, QLIK_SSE_TYPES_MODE_PER_BATCH, 1, name, text1);
  ret->ptr[SAVE_SUM_OF_SQUARES].cacheable = false;
  ret->ptr[SAVED_SUM_OF_SQUARES].cacheable = false;
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

// A refusal of the model store as the call's error: a function failing with it fails the call
// with the refusal's own gRPC code.
static bool refused(qlik_sse_models_refusal_t *refusal, plugin_string_t *err) {
  *err = refusal->message;
  return false;
}

// The value of each row's model: the sum SaveSumOfSquares kept under the row's name.
static bool saved_sum_of_squares(batch_t *input, batch_t *ret, plugin_string_t *err) {
  qlik_sse_types_strings_t *names = &input->columns.ptr[0].val.text;
  double *out = malloc(sizeof(double) * (input->rows ? input->rows : 1));
  for (uint32_t i = 0; i < input->rows; i++) {
    uint32_t from = names->offsets.ptr[i], to = names->offsets.ptr[i + 1];
    plugin_string_t name = {names->data.ptr + from, to - from};
    plugin_list_u8_t model;
    qlik_sse_models_refusal_t refusal;
    if (!qlik_sse_models_load(&name, &model, &refusal)) {
      free(out);
      return refused(&refusal, err);
    }
    if (model.len != sizeof(double)) {
      plugin_list_u8_free(&model);
      free(out);
      plugin_string_dup(err, "the model is not a saved sum of squares");
      return false;
    }
    memcpy(&out[i], model.ptr, sizeof(double));
    plugin_list_u8_free(&model);
  }
  numbers(ret, input->rows, out);
  return true;
}

bool exports_qlik_sse_functions_call(uint32_t function, batch_t *input, batch_t *ret, plugin_string_t *err) {
  bool ok = true;
  switch (function) {
    case HYPOTENUSE: hypotenuse(input, ret); break;
    case TRIM: trim(input, ret); break;
    case SAVED_SUM_OF_SQUARES: ok = saved_sum_of_squares(input, ret, err); break;
    default:
      plugin_string_dup(err, "not a per-batch function");
      ok = false;
  }
  qlik_sse_types_batch_free(input);
  return ok;
}

// The state of one SumOfSquares or SaveSumOfSquares call.
struct exports_qlik_sse_functions_invocation_t {
  uint32_t function;
  double sum;
  // SaveSumOfSquares: the model's name, the first row's.
  plugin_string_t name;
};

exports_qlik_sse_functions_own_invocation_t exports_qlik_sse_functions_constructor_invocation(uint32_t function) {
  exports_qlik_sse_functions_invocation_t *state = calloc(1, sizeof *state);
  state->function = function;
  return exports_qlik_sse_functions_invocation_new(state);
}

void exports_qlik_sse_functions_invocation_destructor(exports_qlik_sse_functions_invocation_t *state) {
  plugin_string_free(&state->name);
  free(state);
}

bool exports_qlik_sse_functions_method_invocation_update(exports_qlik_sse_functions_borrow_invocation_t state,
                                                          batch_t *input, batch_t *ret, plugin_string_t *err) {
  (void)err;
  size_t values_column = 0;
  if (state->function == SAVE_SUM_OF_SQUARES) {
    qlik_sse_types_strings_t *names = &input->columns.ptr[0].val.text;
    if (state->name.ptr == NULL && input->rows > 0) {
      plugin_string_dup_n(&state->name, (const char *)names->data.ptr, names->offsets.ptr[1]);
    }
    values_column = 1;
  }
  plugin_list_f64_t *values = &input->columns.ptr[values_column].val.numeric;
  for (size_t i = 0; i < values->len; i++) {
    if (!isnan(values->ptr[i])) state->sum += values->ptr[i] * values->ptr[i];
  }
  qlik_sse_types_batch_free(input);
  numbers(ret, 0, NULL);
  return true;
}

bool exports_qlik_sse_functions_method_invocation_finish(exports_qlik_sse_functions_borrow_invocation_t state,
                                                          batch_t *ret, plugin_string_t *err) {
  if (state->function == SAVE_SUM_OF_SQUARES) {
    plugin_list_u8_t model = {(uint8_t *)&state->sum, sizeof(double)};
    qlik_sse_models_refusal_t refusal;
    if (!qlik_sse_models_save(&state->name, &model, &refusal)) return refused(&refusal, err);
  }
  double *out = malloc(sizeof(double));
  *out = state->sum;
  numbers(ret, 1, out);
  return true;
}
