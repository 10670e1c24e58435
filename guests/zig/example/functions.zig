//! Example sse-wasm functions in Zig, on the C bindings `wit-bindgen c` generates for the plugin
//! world (guests/c/gen/plugin.h): a scalar, an aggregation and a string function, and a pair that
//! keeps a model between calls through the model store (saved by a load script, used by a chart).
//!
//! Ownership follows wit-bindgen's C rules: arguments belong to the callee (free them), and what a
//! function returns is allocated with malloc and freed by the generated code after the call.

const std = @import("std");
/// gen/bindings.zig: wit-bindgen's plugin.h and stdlib.h, translated by `zig translate-c`.
const c = @import("bindings");

const FunctionDef = c.qlik_sse_types_function_def_t;
const Batch = c.qlik_sse_types_batch_t;
const Column = c.qlik_sse_types_column_t;
const PluginString = c.plugin_string_t;

const to_fahrenheit = 0;
const count_present = 1;
const initials = 2;
const save_count = 3;
const saved_count = 4;
const function_count = 5;

const numeric_type = c.QLIK_SSE_TYPES_DATA_TYPE_NUMERIC;
const text_type = c.QLIK_SSE_TYPES_DATA_TYPE_TEXT;

/// `count` zeroed values of `T` from malloc, as the generated code frees them; at least one, so
/// that an empty answer is a valid pointer too.
fn alloc(comptime T: type, count: usize) [*]T {
    const memory = c.calloc(@max(count, 1), @sizeOf(T)) orelse @panic("out of memory");
    return @ptrCast(@alignCast(memory));
}

fn declare(
    def: *FunctionDef,
    name: [*:0]const u8,
    description: [*:0]const u8,
    function_type: u8,
    returns: u8,
    mode: u8,
    param_names: []const [*:0]const u8,
    param_types: []const u8,
) void {
    def.* = std.mem.zeroes(FunctionDef);
    c.plugin_string_dup(&def.name, name);
    c.plugin_string_dup(&def.description, description);
    def.function_type = function_type;
    def.return_type = returns;
    def.mode = mode;
    def.cacheable = true;
    def.params.len = param_names.len;
    def.params.ptr = alloc(c.qlik_sse_types_param_t, param_names.len);
    for (param_names, 0..) |param, i| {
        c.plugin_string_dup(&def.params.ptr[i].name, param);
        def.params.ptr[i].data_type = param_types[i];
    }
}

export fn exports_qlik_sse_functions_describe(ret: *c.exports_qlik_sse_functions_list_function_def_t) void {
    const defs = alloc(FunctionDef, function_count);
    ret.len = function_count;
    ret.ptr = defs;
    declare(&defs[to_fahrenheit], "ToFahrenheit", "Degrees Celsius in degrees Fahrenheit.", c.QLIK_SSE_TYPES_FUNCTION_TYPE_SCALAR, numeric_type, c.QLIK_SSE_TYPES_MODE_PER_BATCH, &.{"Celsius"}, &.{numeric_type});
    declare(&defs[count_present], "CountPresent", "How many values are not null (NaN).", c.QLIK_SSE_TYPES_FUNCTION_TYPE_AGGREGATION, numeric_type, c.QLIK_SSE_TYPES_MODE_PER_CALL, &.{"Values"}, &.{numeric_type});
    declare(&defs[initials], "Initials", "The first letter of every word, in capitals.", c.QLIK_SSE_TYPES_FUNCTION_TYPE_SCALAR, text_type, c.QLIK_SSE_TYPES_MODE_PER_BATCH, &.{"Text"}, &.{text_type});
    declare(&defs[save_count], "SaveCount", "Keeps how many values are not null as model Name (the first row's) of this Qlik app.", c.QLIK_SSE_TYPES_FUNCTION_TYPE_AGGREGATION, numeric_type, c.QLIK_SSE_TYPES_MODE_PER_CALL, &.{ "Name", "Values" }, &.{ text_type, numeric_type });
    declare(&defs[saved_count], "SavedCount", "The count SaveCount kept as model Name.", c.QLIK_SSE_TYPES_FUNCTION_TYPE_SCALAR, numeric_type, c.QLIK_SSE_TYPES_MODE_PER_BATCH, &.{"Name"}, &.{text_type});
    defs[save_count].cacheable = false;
    defs[saved_count].cacheable = false;
}

/// A batch of `rows` rows with one column, whose tag and values the caller sets.
fn oneColumn(ret: *Batch, rows: u32) *Column {
    ret.rows = rows;
    const columns = alloc(Column, 1);
    ret.columns.len = 1;
    ret.columns.ptr = columns;
    return &columns[0];
}

fn numbers(ret: *Batch, values: []f64) void {
    const column = oneColumn(ret, @intCast(values.len));
    column.tag = c.QLIK_SSE_TYPES_COLUMN_NUMERIC;
    column.val.numeric.ptr = values.ptr;
    column.val.numeric.len = values.len;
}

fn toFahrenheit(input: *Batch, ret: *Batch) void {
    const celsius = input.columns.ptr[0].val.numeric.ptr[0..input.rows];
    const out = alloc(f64, input.rows)[0..input.rows];
    for (celsius, out) |degrees, *answer| answer.* = degrees * 9.0 / 5.0 + 32.0;
    numbers(ret, out);
}

fn initialsOf(input: *Batch, ret: *Batch) void {
    const in = &input.columns.ptr[0].val.text;
    const column = oneColumn(ret, input.rows);
    column.tag = c.QLIK_SSE_TYPES_COLUMN_TEXT;
    const out = &column.val.text;
    out.data.ptr = alloc(u8, in.data.len);
    out.offsets.ptr = alloc(u32, input.rows + 1);
    out.offsets.len = input.rows + 1;
    out.offsets.ptr[0] = 0;
    var end: u32 = 0;
    var row: u32 = 0;
    while (row < input.rows) : (row += 1) {
        const text = in.data.ptr[in.offsets.ptr[row]..in.offsets.ptr[row + 1]];
        var word_start = true;
        for (text) |byte| {
            const space = std.ascii.isWhitespace(byte);
            // A word's first byte; UTF-8 continuation bytes (0b10xxxxxx) never start one.
            if (word_start and !space) {
                out.data.ptr[end] = std.ascii.toUpper(byte);
                end += 1;
                // The rest of a multi-byte first letter.
                word_start = false;
            } else if (!word_start and !space and byte & 0xC0 == 0x80 and end > 0 and isLeadOfLast(out.data.ptr[0..end])) {
                out.data.ptr[end] = byte;
                end += 1;
            }
            if (space) word_start = true;
        }
        out.offsets.ptr[row + 1] = end;
    }
    out.data.len = end;
}

/// True while the last letter written is an incomplete multi-byte UTF-8 sequence.
fn isLeadOfLast(written: []const u8) bool {
    var i = written.len;
    var continuation: usize = 0;
    while (i > 0 and written[i - 1] & 0xC0 == 0x80) : (i -= 1) continuation += 1;
    if (i == 0) return false;
    const lead = written[i - 1];
    const length: usize = if (lead & 0xE0 == 0xC0) 2 else if (lead & 0xF0 == 0xE0) 3 else if (lead & 0xF8 == 0xF0) 4 else 1;
    return continuation + 1 < length;
}

/// A refusal of the model store as the call's error: a function failing with it fails the call
/// with the refusal's own gRPC code.
fn refused(refusal: *c.qlik_sse_models_refusal_t, err: *PluginString) bool {
    err.* = refusal.message;
    return false;
}

/// Each row's model: the count SaveCount kept under the row's name.
fn savedCount(input: *Batch, ret: *Batch, err: *PluginString) bool {
    const names = &input.columns.ptr[0].val.text;
    const out = alloc(f64, input.rows)[0..input.rows];
    for (out, 0..) |*answer, row| {
        const from = names.offsets.ptr[row];
        var name = PluginString{ .ptr = names.data.ptr + from, .len = names.offsets.ptr[row + 1] - from };
        var model: c.plugin_list_u8_t = undefined;
        var refusal: c.qlik_sse_models_refusal_t = undefined;
        if (!c.qlik_sse_models_load(&name, &model, &refusal)) {
            c.free(out.ptr);
            return refused(&refusal, err);
        }
        defer c.plugin_list_u8_free(&model);
        if (model.len != @sizeOf(f64)) {
            c.free(out.ptr);
            c.plugin_string_dup(err, "the model is not a saved count");
            return false;
        }
        answer.* = @bitCast(model.ptr[0..8].*);
    }
    numbers(ret, out);
    return true;
}

export fn exports_qlik_sse_functions_call(function: u32, input: *Batch, ret: *Batch, err: *PluginString) bool {
    defer c.qlik_sse_types_batch_free(input);
    switch (function) {
        to_fahrenheit => toFahrenheit(input, ret),
        initials => initialsOf(input, ret),
        saved_count => return savedCount(input, ret, err),
        else => {
            c.plugin_string_dup(err, "not a per-batch function");
            return false;
        },
    }
    return true;
}

/// The state of one CountPresent or SaveCount call.
const Invocation = struct {
    function: u32,
    count: f64,
    /// SaveCount: the model's name, the first row's.
    name: PluginString,
};

export fn exports_qlik_sse_functions_constructor_invocation(function: u32) c.exports_qlik_sse_functions_own_invocation_t {
    const created = alloc(Invocation, 1);
    created[0] = .{ .function = function, .count = 0, .name = std.mem.zeroes(PluginString) };
    return c.exports_qlik_sse_functions_invocation_new(@ptrCast(created));
}

export fn exports_qlik_sse_functions_invocation_destructor(rep: *c.exports_qlik_sse_functions_invocation_t) void {
    c.plugin_string_free(&state(rep).name);
    c.free(rep);
}

fn state(rep: c.exports_qlik_sse_functions_borrow_invocation_t) *Invocation {
    return @ptrCast(@alignCast(rep));
}

export fn exports_qlik_sse_functions_method_invocation_update(rep: c.exports_qlik_sse_functions_borrow_invocation_t, input: *Batch, ret: *Batch, err: *PluginString) bool {
    _ = err;
    defer c.qlik_sse_types_batch_free(input);
    var values_column: usize = 0;
    if (state(rep).function == save_count) {
        const names = &input.columns.ptr[0].val.text;
        if (state(rep).name.ptr == null and input.rows > 0) {
            c.plugin_string_dup_n(&state(rep).name, names.data.ptr, names.offsets.ptr[1]);
        }
        values_column = 1;
    }
    const values = input.columns.ptr[values_column].val.numeric;
    for (values.ptr[0..values.len]) |value| {
        if (!std.math.isNan(value)) state(rep).count += 1;
    }
    numbers(ret, alloc(f64, 0)[0..0]);
    return true;
}

export fn exports_qlik_sse_functions_method_invocation_finish(rep: c.exports_qlik_sse_functions_borrow_invocation_t, ret: *Batch, err: *PluginString) bool {
    if (state(rep).function == save_count) {
        var model = c.plugin_list_u8_t{ .ptr = @ptrCast(&state(rep).count), .len = @sizeOf(f64) };
        var refusal: c.qlik_sse_models_refusal_t = undefined;
        if (!c.qlik_sse_models_save(&state(rep).name, &model, &refusal)) return refused(&refusal, err);
    }
    const out = alloc(f64, 1)[0..1];
    out[0] = state(rep).count;
    numbers(ret, out);
    return true;
}
