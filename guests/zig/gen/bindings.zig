const __root = @This();
pub const __builtin = @import("std").zig.c_translation.builtins;
pub const __helpers = @import("std").zig.c_translation.helpers;
pub const ptrdiff_t = c_long;
pub const wchar_t = c_int;
pub const max_align_t = extern struct {
    __aro_max_align_ll: c_longlong = 0,
    __aro_max_align_ld: c_longdouble = 0,
};
pub extern fn malloc(__size: usize) ?*anyopaque;
pub extern fn free(__ptr: ?*anyopaque) void;
pub extern fn calloc(__nmemb: usize, __size: usize) ?*anyopaque;
pub extern fn realloc(__ptr: ?*anyopaque, __size: usize) ?*anyopaque;
pub extern fn abort() noreturn;
pub extern fn qsort(?*anyopaque, usize, usize, ?*const fn (?*const anyopaque, ?*const anyopaque) callconv(.c) c_int) void;
pub extern fn _Exit(c_int) noreturn;
pub const time_t = c_longlong;
pub const suseconds_t = c_longlong;
pub const struct_timeval = extern struct {
    tv_sec: time_t = 0,
    tv_usec: suseconds_t = 0,
};
pub const struct_timespec = extern struct {
    tv_sec: time_t = 0,
    tv_nsec: c_long = 0,
};
pub const struct_iovec = extern struct {
    iov_base: ?*anyopaque = null,
    iov_len: usize = 0,
};
pub extern fn atoi([*c]const u8) c_int;
pub extern fn atol([*c]const u8) c_long;
pub extern fn atoll([*c]const u8) c_longlong;
pub extern fn atof([*c]const u8) f64;
pub extern fn strtof(noalias [*c]const u8, noalias [*c][*c]u8) f32;
pub extern fn strtod(noalias [*c]const u8, noalias [*c][*c]u8) f64;
pub extern fn strtold(noalias [*c]const u8, noalias [*c][*c]u8) c_longdouble;
pub extern fn strtol(noalias [*c]const u8, noalias [*c][*c]u8, c_int) c_long;
pub extern fn strtoul(noalias [*c]const u8, noalias [*c][*c]u8, c_int) c_ulong;
pub extern fn strtoll(noalias [*c]const u8, noalias [*c][*c]u8, c_int) c_longlong;
pub extern fn strtoull(noalias [*c]const u8, noalias [*c][*c]u8, c_int) c_ulonglong;
pub extern fn rand() c_int;
pub extern fn srand(c_uint) void;
pub extern fn aligned_alloc(usize, usize) ?*anyopaque;
pub extern fn atexit(?*const fn () callconv(.c) void) c_int;
pub extern fn exit(c_int) noreturn;
pub extern fn at_quick_exit(?*const fn () callconv(.c) void) c_int;
pub extern fn quick_exit(c_int) noreturn;
pub extern fn getenv([*c]const u8) [*c]u8;
pub extern fn system([*c]const u8) c_int;
pub extern fn bsearch(?*const anyopaque, ?*const anyopaque, usize, usize, ?*const fn (?*const anyopaque, ?*const anyopaque) callconv(.c) c_int) ?*anyopaque;
pub extern fn abs(c_int) c_int;
pub extern fn labs(c_long) c_long;
pub extern fn llabs(c_longlong) c_longlong;
pub const div_t = extern struct {
    quot: c_int = 0,
    rem: c_int = 0,
};
pub const ldiv_t = extern struct {
    quot: c_long = 0,
    rem: c_long = 0,
};
pub const lldiv_t = extern struct {
    quot: c_longlong = 0,
    rem: c_longlong = 0,
};
pub extern fn div(c_int, c_int) div_t;
pub extern fn ldiv(c_long, c_long) ldiv_t;
pub extern fn lldiv(c_longlong, c_longlong) lldiv_t;
pub extern fn mblen([*c]const u8, usize) c_int;
pub extern fn mbtowc(noalias [*c]wchar_t, noalias [*c]const u8, usize) c_int;
pub extern fn wctomb([*c]u8, wchar_t) c_int;
pub extern fn mbstowcs(noalias [*c]wchar_t, noalias [*c]const u8, usize) usize;
pub extern fn wcstombs(noalias [*c]u8, noalias [*c]const wchar_t, usize) usize;
pub extern fn __ctype_get_mb_cur_max() usize;
pub extern fn posix_memalign([*c]?*anyopaque, usize, usize) c_int;
pub extern fn setenv([*c]const u8, [*c]const u8, c_int) c_int;
pub extern fn unsetenv([*c]const u8) c_int;
pub extern fn getsubopt([*c][*c]u8, [*c]const [*c]u8, [*c][*c]u8) c_int;
pub extern fn rand_r([*c]c_uint) c_int;
pub extern fn realpath(noalias [*c]const u8, noalias [*c]u8) [*c]u8;
pub extern fn random() c_long;
pub extern fn srandom(c_uint) void;
pub extern fn initstate(c_uint, [*c]u8, usize) [*c]u8;
pub extern fn setstate([*c]u8) [*c]u8;
pub extern fn putenv([*c]u8) c_int;
pub extern fn l64a(c_long) [*c]u8;
pub extern fn a64l([*c]const u8) c_long;
pub extern fn setkey([*c]const u8) void;
pub extern fn drand48() f64;
pub extern fn erand48([*c]c_ushort) f64;
pub extern fn lrand48() c_long;
pub extern fn nrand48([*c]c_ushort) c_long;
pub extern fn mrand48() c_long;
pub extern fn jrand48([*c]c_ushort) c_long;
pub extern fn srand48(c_long) void;
pub extern fn seed48([*c]c_ushort) [*c]c_ushort;
pub extern fn lcong48([*c]c_ushort) void;
pub extern fn alloca(usize) ?*anyopaque;
pub extern fn clearenv() c_int;
pub const intmax_t = c_longlong;
pub const uintmax_t = c_ulonglong;
pub const int_fast8_t = i8;
pub const int_fast64_t = i64;
pub const int_least8_t = i8;
pub const int_least16_t = i16;
pub const int_least32_t = i32;
pub const int_least64_t = i64;
pub const uint_fast8_t = u8;
pub const uint_fast64_t = u64;
pub const uint_least8_t = u8;
pub const uint_least16_t = u16;
pub const uint_least32_t = u32;
pub const uint_least64_t = u64;
pub const int_fast16_t = i16;
pub const int_fast32_t = i32;
pub const uint_fast16_t = u16;
pub const uint_fast32_t = u32;
pub extern fn arc4random() u32;
pub extern fn arc4random_buf(?*anyopaque, usize) void;
pub extern fn arc4random_uniform(u32) u32;
pub const struct_plugin_string_t = extern struct {
    ptr: [*c]u8 = null,
    len: usize = 0,
    pub const qlik_sse_models_save = __root.qlik_sse_models_save;
    pub const qlik_sse_models_load = __root.qlik_sse_models_load;
    pub const plugin_string_set = __root.plugin_string_set;
    pub const plugin_string_dup = __root.plugin_string_dup;
    pub const plugin_string_dup_n = __root.plugin_string_dup_n;
    pub const plugin_string_free = __root.plugin_string_free;
    pub const save = __root.qlik_sse_models_save;
    pub const load = __root.qlik_sse_models_load;
    pub const set = __root.plugin_string_set;
    pub const dup = __root.plugin_string_dup;
    pub const n = __root.plugin_string_dup_n;
};
pub const plugin_string_t = struct_plugin_string_t;
pub const qlik_sse_models_fault_t = u8;
pub const struct_qlik_sse_models_refusal_t = extern struct {
    fault: qlik_sse_models_fault_t = 0,
    message: plugin_string_t = @import("std").mem.zeroes(plugin_string_t),
    pub const qlik_sse_models_refusal_free = __root.qlik_sse_models_refusal_free;
};
pub const qlik_sse_models_refusal_t = struct_qlik_sse_models_refusal_t;
pub const struct_qlik_sse_models_model_info_t = extern struct {
    name: plugin_string_t = @import("std").mem.zeroes(plugin_string_t),
    bytes: u64 = 0,
    shared: bool = false,
    modified: u64 = 0,
    pub const qlik_sse_models_model_info_free = __root.qlik_sse_models_model_info_free;
};
pub const qlik_sse_models_model_info_t = struct_qlik_sse_models_model_info_t;
pub const plugin_list_u8_t = extern struct {
    ptr: [*c]u8 = null,
    len: usize = 0,
    pub const plugin_list_u8_free = __root.plugin_list_u8_free;
};
const union_unnamed_1 = extern union {
    err: qlik_sse_models_refusal_t,
};
pub const qlik_sse_models_result_void_refusal_t = extern struct {
    is_err: bool = false,
    val: union_unnamed_1 = @import("std").mem.zeroes(union_unnamed_1),
    pub const qlik_sse_models_result_void_refusal_free = __root.qlik_sse_models_result_void_refusal_free;
};
const union_unnamed_2 = extern union {
    ok: plugin_list_u8_t,
    err: qlik_sse_models_refusal_t,
};
pub const qlik_sse_models_result_list_u8_refusal_t = extern struct {
    is_err: bool = false,
    val: union_unnamed_2 = @import("std").mem.zeroes(union_unnamed_2),
    pub const qlik_sse_models_result_list_u8_refusal_free = __root.qlik_sse_models_result_list_u8_refusal_free;
};
pub const qlik_sse_models_list_model_info_t = extern struct {
    ptr: [*c]qlik_sse_models_model_info_t = null,
    len: usize = 0,
    pub const qlik_sse_models_list = __root.qlik_sse_models_list;
    pub const qlik_sse_models_list_model_info_free = __root.qlik_sse_models_list_model_info_free;
    pub const list = __root.qlik_sse_models_list;
};
const union_unnamed_3 = extern union {
    ok: qlik_sse_models_list_model_info_t,
    err: qlik_sse_models_refusal_t,
};
pub const qlik_sse_models_result_list_model_info_refusal_t = extern struct {
    is_err: bool = false,
    val: union_unnamed_3 = @import("std").mem.zeroes(union_unnamed_3),
    pub const qlik_sse_models_result_list_model_info_refusal_free = __root.qlik_sse_models_result_list_model_info_refusal_free;
};
pub const qlik_sse_types_data_type_t = u8;
pub const qlik_sse_types_function_type_t = u8;
pub const qlik_sse_types_mode_t = u8;
pub const struct_qlik_sse_types_param_t = extern struct {
    name: plugin_string_t = @import("std").mem.zeroes(plugin_string_t),
    data_type: qlik_sse_types_data_type_t = 0,
    pub const qlik_sse_types_param_free = __root.qlik_sse_types_param_free;
};
pub const qlik_sse_types_param_t = struct_qlik_sse_types_param_t;
pub const struct_qlik_sse_types_field_t = extern struct {
    name: plugin_string_t = @import("std").mem.zeroes(plugin_string_t),
    data_type: qlik_sse_types_data_type_t = 0,
    pub const qlik_sse_types_field_free = __root.qlik_sse_types_field_free;
};
pub const qlik_sse_types_field_t = struct_qlik_sse_types_field_t;
pub const qlik_sse_types_list_field_t = extern struct {
    ptr: [*c]qlik_sse_types_field_t = null,
    len: usize = 0,
    pub const qlik_sse_types_list_field_free = __root.qlik_sse_types_list_field_free;
};
pub const struct_qlik_sse_types_table_t = extern struct {
    name: plugin_string_t = @import("std").mem.zeroes(plugin_string_t),
    fields: qlik_sse_types_list_field_t = @import("std").mem.zeroes(qlik_sse_types_list_field_t),
    pub const qlik_sse_types_table_free = __root.qlik_sse_types_table_free;
};
pub const qlik_sse_types_table_t = struct_qlik_sse_types_table_t;
pub const qlik_sse_types_list_param_t = extern struct {
    ptr: [*c]qlik_sse_types_param_t = null,
    len: usize = 0,
    pub const qlik_sse_types_list_param_free = __root.qlik_sse_types_list_param_free;
};
pub const qlik_sse_types_option_table_t = extern struct {
    is_some: bool = false,
    val: qlik_sse_types_table_t = @import("std").mem.zeroes(qlik_sse_types_table_t),
    pub const qlik_sse_types_option_table_free = __root.qlik_sse_types_option_table_free;
};
pub const struct_qlik_sse_types_function_def_t = extern struct {
    name: plugin_string_t = @import("std").mem.zeroes(plugin_string_t),
    description: plugin_string_t = @import("std").mem.zeroes(plugin_string_t),
    function_type: qlik_sse_types_function_type_t = 0,
    return_type: qlik_sse_types_data_type_t = 0,
    params: qlik_sse_types_list_param_t = @import("std").mem.zeroes(qlik_sse_types_list_param_t),
    mode: qlik_sse_types_mode_t = 0,
    table: qlik_sse_types_option_table_t = @import("std").mem.zeroes(qlik_sse_types_option_table_t),
    cacheable: bool = false,
    pub const qlik_sse_types_function_def_free = __root.qlik_sse_types_function_def_free;
    pub const exports_qlik_sse_functions_function_def_free = __root.exports_qlik_sse_functions_function_def_free;
};
pub const qlik_sse_types_function_def_t = struct_qlik_sse_types_function_def_t;
pub const plugin_list_u32_t = extern struct {
    ptr: [*c]u32 = null,
    len: usize = 0,
    pub const plugin_list_u32_free = __root.plugin_list_u32_free;
};
pub const struct_qlik_sse_types_strings_t = extern struct {
    data: plugin_list_u8_t = @import("std").mem.zeroes(plugin_list_u8_t),
    offsets: plugin_list_u32_t = @import("std").mem.zeroes(plugin_list_u32_t),
    pub const qlik_sse_types_strings_free = __root.qlik_sse_types_strings_free;
};
pub const qlik_sse_types_strings_t = struct_qlik_sse_types_strings_t;
pub const plugin_list_f64_t = extern struct {
    ptr: [*c]f64 = null,
    len: usize = 0,
    pub const plugin_list_f64_free = __root.plugin_list_f64_free;
};
pub const struct_qlik_sse_types_duals_t = extern struct {
    numbers: plugin_list_f64_t = @import("std").mem.zeroes(plugin_list_f64_t),
    strings: qlik_sse_types_strings_t = @import("std").mem.zeroes(qlik_sse_types_strings_t),
    pub const qlik_sse_types_duals_free = __root.qlik_sse_types_duals_free;
};
pub const qlik_sse_types_duals_t = struct_qlik_sse_types_duals_t;
const union_unnamed_4 = extern union {
    text: qlik_sse_types_strings_t,
    numeric: plugin_list_f64_t,
    dual: qlik_sse_types_duals_t,
};
pub const struct_qlik_sse_types_column_t = extern struct {
    tag: u8 = 0,
    val: union_unnamed_4 = @import("std").mem.zeroes(union_unnamed_4),
    pub const qlik_sse_types_column_free = __root.qlik_sse_types_column_free;
};
pub const qlik_sse_types_column_t = struct_qlik_sse_types_column_t;
pub const qlik_sse_types_list_column_t = extern struct {
    ptr: [*c]qlik_sse_types_column_t = null,
    len: usize = 0,
    pub const qlik_sse_types_list_column_free = __root.qlik_sse_types_list_column_free;
};
pub const struct_qlik_sse_types_batch_t = extern struct {
    rows: u32 = 0,
    columns: qlik_sse_types_list_column_t = @import("std").mem.zeroes(qlik_sse_types_list_column_t),
    pub const qlik_sse_types_batch_free = __root.qlik_sse_types_batch_free;
    pub const exports_qlik_sse_functions_batch_free = __root.exports_qlik_sse_functions_batch_free;
};
pub const qlik_sse_types_batch_t = struct_qlik_sse_types_batch_t;
pub const exports_qlik_sse_functions_function_def_t = qlik_sse_types_function_def_t;
pub const exports_qlik_sse_functions_batch_t = qlik_sse_types_batch_t;
pub const struct_exports_qlik_sse_functions_own_invocation_t = extern struct {
    __handle: i32 = 0,
    pub const exports_qlik_sse_functions_invocation_drop_own = __root.exports_qlik_sse_functions_invocation_drop_own;
    pub const exports_qlik_sse_functions_invocation_rep = __root.exports_qlik_sse_functions_invocation_rep;
    pub const own = __root.exports_qlik_sse_functions_invocation_drop_own;
    pub const rep = __root.exports_qlik_sse_functions_invocation_rep;
};
pub const exports_qlik_sse_functions_own_invocation_t = struct_exports_qlik_sse_functions_own_invocation_t;
pub const struct_exports_qlik_sse_functions_invocation_t = opaque {
    pub const exports_qlik_sse_functions_method_invocation_update = __root.exports_qlik_sse_functions_method_invocation_update;
    pub const exports_qlik_sse_functions_method_invocation_finish = __root.exports_qlik_sse_functions_method_invocation_finish;
    pub const exports_qlik_sse_functions_invocation_new = __root.exports_qlik_sse_functions_invocation_new;
    pub const exports_qlik_sse_functions_invocation_destructor = __root.exports_qlik_sse_functions_invocation_destructor;
    pub const update = __root.exports_qlik_sse_functions_method_invocation_update;
    pub const finish = __root.exports_qlik_sse_functions_method_invocation_finish;
    pub const new = __root.exports_qlik_sse_functions_invocation_new;
    pub const destructor = __root.exports_qlik_sse_functions_invocation_destructor;
};
pub const exports_qlik_sse_functions_invocation_t = struct_exports_qlik_sse_functions_invocation_t;
pub const exports_qlik_sse_functions_borrow_invocation_t = ?*exports_qlik_sse_functions_invocation_t;
pub const exports_qlik_sse_functions_list_function_def_t = extern struct {
    ptr: [*c]exports_qlik_sse_functions_function_def_t = null,
    len: usize = 0,
    pub const exports_qlik_sse_functions_describe = __root.exports_qlik_sse_functions_describe;
    pub const exports_qlik_sse_functions_list_function_def_free = __root.exports_qlik_sse_functions_list_function_def_free;
    pub const describe = __root.exports_qlik_sse_functions_describe;
};
const union_unnamed_5 = extern union {
    ok: exports_qlik_sse_functions_batch_t,
    err: plugin_string_t,
};
pub const exports_qlik_sse_functions_result_batch_string_t = extern struct {
    is_err: bool = false,
    val: union_unnamed_5 = @import("std").mem.zeroes(union_unnamed_5),
    pub const exports_qlik_sse_functions_result_batch_string_free = __root.exports_qlik_sse_functions_result_batch_string_free;
};
pub extern fn qlik_sse_models_save(name: [*c]plugin_string_t, model: [*c]plugin_list_u8_t, err: [*c]qlik_sse_models_refusal_t) bool;
pub extern fn qlik_sse_models_load(name: [*c]plugin_string_t, ret: [*c]plugin_list_u8_t, err: [*c]qlik_sse_models_refusal_t) bool;
pub extern fn qlik_sse_models_list(ret: [*c]qlik_sse_models_list_model_info_t, err: [*c]qlik_sse_models_refusal_t) bool;
pub extern fn exports_qlik_sse_functions_describe(ret: [*c]exports_qlik_sse_functions_list_function_def_t) void;
pub extern fn exports_qlik_sse_functions_call(function: u32, input: [*c]exports_qlik_sse_functions_batch_t, ret: [*c]exports_qlik_sse_functions_batch_t, err: [*c]plugin_string_t) bool;
pub extern fn exports_qlik_sse_functions_constructor_invocation(function: u32) exports_qlik_sse_functions_own_invocation_t;
pub extern fn exports_qlik_sse_functions_method_invocation_update(self: exports_qlik_sse_functions_borrow_invocation_t, input: [*c]exports_qlik_sse_functions_batch_t, ret: [*c]exports_qlik_sse_functions_batch_t, err: [*c]plugin_string_t) bool;
pub extern fn exports_qlik_sse_functions_method_invocation_finish(self: exports_qlik_sse_functions_borrow_invocation_t, ret: [*c]exports_qlik_sse_functions_batch_t, err: [*c]plugin_string_t) bool;
pub extern fn qlik_sse_models_refusal_free(ptr: [*c]qlik_sse_models_refusal_t) void;
pub extern fn qlik_sse_models_model_info_free(ptr: [*c]qlik_sse_models_model_info_t) void;
pub extern fn plugin_list_u8_free(ptr: [*c]plugin_list_u8_t) void;
pub extern fn qlik_sse_models_result_void_refusal_free(ptr: [*c]qlik_sse_models_result_void_refusal_t) void;
pub extern fn qlik_sse_models_result_list_u8_refusal_free(ptr: [*c]qlik_sse_models_result_list_u8_refusal_t) void;
pub extern fn qlik_sse_models_list_model_info_free(ptr: [*c]qlik_sse_models_list_model_info_t) void;
pub extern fn qlik_sse_models_result_list_model_info_refusal_free(ptr: [*c]qlik_sse_models_result_list_model_info_refusal_t) void;
pub extern fn qlik_sse_types_param_free(ptr: [*c]qlik_sse_types_param_t) void;
pub extern fn qlik_sse_types_field_free(ptr: [*c]qlik_sse_types_field_t) void;
pub extern fn qlik_sse_types_list_field_free(ptr: [*c]qlik_sse_types_list_field_t) void;
pub extern fn qlik_sse_types_table_free(ptr: [*c]qlik_sse_types_table_t) void;
pub extern fn qlik_sse_types_list_param_free(ptr: [*c]qlik_sse_types_list_param_t) void;
pub extern fn qlik_sse_types_option_table_free(ptr: [*c]qlik_sse_types_option_table_t) void;
pub extern fn qlik_sse_types_function_def_free(ptr: [*c]qlik_sse_types_function_def_t) void;
pub extern fn plugin_list_u32_free(ptr: [*c]plugin_list_u32_t) void;
pub extern fn qlik_sse_types_strings_free(ptr: [*c]qlik_sse_types_strings_t) void;
pub extern fn plugin_list_f64_free(ptr: [*c]plugin_list_f64_t) void;
pub extern fn qlik_sse_types_duals_free(ptr: [*c]qlik_sse_types_duals_t) void;
pub extern fn qlik_sse_types_column_free(ptr: [*c]qlik_sse_types_column_t) void;
pub extern fn qlik_sse_types_list_column_free(ptr: [*c]qlik_sse_types_list_column_t) void;
pub extern fn qlik_sse_types_batch_free(ptr: [*c]qlik_sse_types_batch_t) void;
pub extern fn exports_qlik_sse_functions_function_def_free(ptr: [*c]exports_qlik_sse_functions_function_def_t) void;
pub extern fn exports_qlik_sse_functions_batch_free(ptr: [*c]exports_qlik_sse_functions_batch_t) void;
pub extern fn exports_qlik_sse_functions_invocation_drop_own(handle: exports_qlik_sse_functions_own_invocation_t) void;
pub extern fn exports_qlik_sse_functions_invocation_new(rep: ?*exports_qlik_sse_functions_invocation_t) exports_qlik_sse_functions_own_invocation_t;
pub extern fn exports_qlik_sse_functions_invocation_rep(handle: exports_qlik_sse_functions_own_invocation_t) ?*exports_qlik_sse_functions_invocation_t;
pub extern fn exports_qlik_sse_functions_invocation_destructor(rep: ?*exports_qlik_sse_functions_invocation_t) void;
pub extern fn exports_qlik_sse_functions_list_function_def_free(ptr: [*c]exports_qlik_sse_functions_list_function_def_t) void;
pub extern fn exports_qlik_sse_functions_result_batch_string_free(ptr: [*c]exports_qlik_sse_functions_result_batch_string_t) void;
pub extern fn plugin_string_set(ret: [*c]plugin_string_t, s: [*c]const u8) void;
pub extern fn plugin_string_dup(ret: [*c]plugin_string_t, s: [*c]const u8) void;
pub extern fn plugin_string_dup_n(ret: [*c]plugin_string_t, s: [*c]const u8, len: usize) void;
pub extern fn plugin_string_free(ret: [*c]plugin_string_t) void;

pub const __VERSION__ = "Aro aro-zig";
pub const __Aro__ = "";
pub const __STDC__ = @as(c_int, 1);
pub const __STDC_HOSTED__ = @as(c_int, 1);
pub const __STDC_UTF_16__ = @as(c_int, 1);
pub const __STDC_UTF_32__ = @as(c_int, 1);
pub const __STDC_EMBED_NOT_FOUND__ = @as(c_int, 0);
pub const __STDC_EMBED_FOUND__ = @as(c_int, 1);
pub const __STDC_EMBED_EMPTY__ = @as(c_int, 2);
pub const __STDC_VERSION__ = @as(c_long, 201710);
pub const __GNUC__ = @as(c_int, 4);
pub const __GNUC_MINOR__ = @as(c_int, 2);
pub const __GNUC_PATCHLEVEL__ = @as(c_int, 1);
pub const __ARO_EMULATE_NO__ = @as(c_int, 0);
pub const __ARO_EMULATE_CLANG__ = @as(c_int, 1);
pub const __ARO_EMULATE_GCC__ = @as(c_int, 2);
pub const __ARO_EMULATE_MSVC__ = @as(c_int, 3);
pub const __ARO_EMULATE__ = __ARO_EMULATE_CLANG__;
pub inline fn __building_module(x: anytype) @TypeOf(@as(c_int, 0)) {
    _ = &x;
    return @as(c_int, 0);
}
pub const TARGET_OS_WIN32 = @as(c_int, 0);
pub const TARGET_OS_WINDOWS = @as(c_int, 0);
pub const TARGET_OS_LINUX = @as(c_int, 0);
pub const TARGET_OS_UNIX = @as(c_int, 0);
pub const TARGET_OS_MAC = @as(c_int, 0);
pub const TARGET_OS_OSX = @as(c_int, 0);
pub const TARGET_OS_IPHONE = @as(c_int, 0);
pub const TARGET_OS_IOS = @as(c_int, 0);
pub const TARGET_OS_TV = @as(c_int, 0);
pub const TARGET_OS_WATCH = @as(c_int, 0);
pub const TARGET_OS_VISION = @as(c_int, 0);
pub const TARGET_OS_DRIVERKIT = @as(c_int, 0);
pub const TARGET_OS_MACCATALYST = @as(c_int, 0);
pub const TARGET_OS_SIMULATOR = @as(c_int, 0);
pub const TARGET_OS_EMBEDDED = @as(c_int, 0);
pub const TARGET_OS_NANO = @as(c_int, 0);
pub const TARGET_IPHONE_SIMULATOR = @as(c_int, 0);
pub const TARGET_OS_UIKITFORMAC = @as(c_int, 0);
pub const TARGET_OS_UEFI = @as(c_int, 0);
pub const __wasi__ = @as(c_int, 1);
pub const __wasm = @as(c_int, 1);
pub const __wasm__ = @as(c_int, 1);
pub const __wasm32 = @as(c_int, 1);
pub const __wasm32__ = @as(c_int, 1);
pub const __wasm_bulk_memory_opt__ = @as(c_int, 1);
pub const __wasm_call_indirect_overlong__ = @as(c_int, 1);
pub const __wasm_extended_const__ = @as(c_int, 1);
pub const __wasm_multivalue__ = @as(c_int, 1);
pub const __wasm_mutable_globals__ = @as(c_int, 1);
pub const __wasm_nontrapping_fptoint__ = @as(c_int, 1);
pub const __wasm_sign_ext__ = @as(c_int, 1);
pub const _ILP32 = @as(c_int, 1);
pub const __ILP32__ = @as(c_int, 1);
pub const __FLOAT128__ = @as(c_int, 1);
pub const __ORDER_LITTLE_ENDIAN__ = @as(c_int, 1234);
pub const __ORDER_BIG_ENDIAN__ = @as(c_int, 4321);
pub const __ORDER_PDP_ENDIAN__ = @as(c_int, 3412);
pub const __BYTE_ORDER__ = __ORDER_LITTLE_ENDIAN__;
pub const __LITTLE_ENDIAN__ = @as(c_int, 1);
pub const __ATOMIC_RELAXED = @as(c_int, 0);
pub const __ATOMIC_CONSUME = @as(c_int, 1);
pub const __ATOMIC_ACQUIRE = @as(c_int, 2);
pub const __ATOMIC_RELEASE = @as(c_int, 3);
pub const __ATOMIC_ACQ_REL = @as(c_int, 4);
pub const __ATOMIC_SEQ_CST = @as(c_int, 5);
pub const __ATOMIC_BOOL_LOCK_FREE = @as(c_int, 1);
pub const __ATOMIC_CHAR_LOCK_FREE = @as(c_int, 1);
pub const __ATOMIC_CHAR16_T_LOCK_FREE = @as(c_int, 1);
pub const __ATOMIC_CHAR32_T_LOCK_FREE = @as(c_int, 1);
pub const __ATOMIC_WCHAR_T_LOCK_FREE = @as(c_int, 1);
pub const __ATOMIC_WINT_T_LOCK_FREE = @as(c_int, 1);
pub const __ATOMIC_SHORT_LOCK_FREE = @as(c_int, 1);
pub const __ATOMIC_INT_LOCK_FREE = @as(c_int, 1);
pub const __ATOMIC_LONG_LOCK_FREE = @as(c_int, 1);
pub const __ATOMIC_LLONG_LOCK_FREE = @as(c_int, 1);
pub const __ATOMIC_POINTER_LOCK_FREE = @as(c_int, 1);
pub const __CHAR_BIT__ = @as(c_int, 8);
pub const __BOOL_WIDTH__ = @as(c_int, 8);
pub const __SCHAR_MAX__ = @as(c_int, 127);
pub const __SCHAR_WIDTH__ = @as(c_int, 8);
pub const __SHRT_MAX__ = @as(c_int, 32767);
pub const __SHRT_WIDTH__ = @as(c_int, 16);
pub const __INT_MAX__ = __helpers.promoteIntLiteral(c_int, 2147483647, .decimal);
pub const __INT_WIDTH__ = @as(c_int, 32);
pub const __LONG_MAX__ = @as(c_long, 2147483647);
pub const __LONG_WIDTH__ = @as(c_int, 32);
pub const __LONG_LONG_MAX__ = @as(c_longlong, 9223372036854775807);
pub const __LONG_LONG_WIDTH__ = @as(c_int, 64);
pub const __WCHAR_MAX__ = __helpers.promoteIntLiteral(c_int, 2147483647, .decimal);
pub const __WCHAR_WIDTH__ = @as(c_int, 32);
pub const __WINT_MAX__ = __helpers.promoteIntLiteral(c_int, 2147483647, .decimal);
pub const __WINT_WIDTH__ = @as(c_int, 32);
pub const __INTMAX_MAX__ = @as(c_longlong, 9223372036854775807);
pub const __INTMAX_WIDTH__ = @as(c_int, 64);
pub const __SIZE_MAX__ = @as(c_ulong, 4294967295);
pub const __SIZE_WIDTH__ = @as(c_int, 32);
pub const __UINTMAX_MAX__ = @as(c_ulonglong, 18446744073709551615);
pub const __UINTMAX_WIDTH__ = @as(c_int, 64);
pub const __PTRDIFF_MAX__ = @as(c_long, 2147483647);
pub const __PTRDIFF_WIDTH__ = @as(c_int, 32);
pub const __INTPTR_MAX__ = @as(c_long, 2147483647);
pub const __INTPTR_WIDTH__ = @as(c_int, 32);
pub const __UINTPTR_MAX__ = @as(c_ulong, 4294967295);
pub const __UINTPTR_WIDTH__ = @as(c_int, 32);
pub const __SIG_ATOMIC_MAX__ = @as(c_long, 2147483647);
pub const __SIG_ATOMIC_WIDTH__ = @as(c_int, 32);
pub const __BITINT_MAXWIDTH__ = __helpers.promoteIntLiteral(c_int, 65535, .decimal);
pub const __SIZEOF_FLOAT__ = @as(c_int, 4);
pub const __SIZEOF_DOUBLE__ = @as(c_int, 8);
pub const __SIZEOF_LONG_DOUBLE__ = @as(c_int, 16);
pub const __SIZEOF_SHORT__ = @as(c_int, 2);
pub const __SIZEOF_INT__ = @as(c_int, 4);
pub const __SIZEOF_LONG__ = @as(c_int, 4);
pub const __SIZEOF_LONG_LONG__ = @as(c_int, 8);
pub const __SIZEOF_POINTER__ = @as(c_int, 4);
pub const __SIZEOF_PTRDIFF_T__ = @as(c_int, 4);
pub const __SIZEOF_SIZE_T__ = @as(c_int, 4);
pub const __SIZEOF_WCHAR_T__ = @as(c_int, 4);
pub const __SIZEOF_WINT_T__ = @as(c_int, 4);
pub const __SIZEOF_INT128__ = @as(c_int, 16);
pub const __INTPTR_TYPE__ = c_long;
pub const __UINTPTR_TYPE__ = c_ulong;
pub const __INTMAX_TYPE__ = c_longlong;
pub const __INTMAX_C_SUFFIX__ = @compileError("unable to translate macro: undefined identifier `L`");
// <builtin>:123:9
pub const __INTMAX_C = __helpers.L_SUFFIX;
pub const __UINTMAX_TYPE__ = c_ulonglong;
pub const __UINTMAX_C_SUFFIX__ = @compileError("unable to translate macro: undefined identifier `UL`");
// <builtin>:126:9
pub const __UINTMAX_C = __helpers.UL_SUFFIX;
pub const __PTRDIFF_TYPE__ = c_long;
pub const __SIZE_TYPE__ = c_ulong;
pub const __WCHAR_TYPE__ = c_int;
pub const __WINT_TYPE__ = c_int;
pub const __CHAR16_TYPE__ = c_ushort;
pub const __CHAR32_TYPE__ = c_uint;
pub const __INT8_TYPE__ = i8;
pub const __INT8_FMTd__ = "hhd";
pub const __INT8_FMTi__ = "hhi";
pub const __INT8_C_SUFFIX__ = "";
pub inline fn __INT8_C(c: anytype) @TypeOf(c) {
    _ = &c;
    return c;
}
pub const __INT16_TYPE__ = c_short;
pub const __INT16_FMTd__ = "hd";
pub const __INT16_FMTi__ = "hi";
pub const __INT16_C_SUFFIX__ = "";
pub inline fn __INT16_C(c: anytype) @TypeOf(c) {
    _ = &c;
    return c;
}
pub const __INT32_TYPE__ = c_int;
pub const __INT32_FMTd__ = "d";
pub const __INT32_FMTi__ = "i";
pub const __INT32_C_SUFFIX__ = "";
pub inline fn __INT32_C(c: anytype) @TypeOf(c) {
    _ = &c;
    return c;
}
pub const __INT64_TYPE__ = c_longlong;
pub const __INT64_FMTd__ = "lld";
pub const __INT64_FMTi__ = "lli";
pub const __INT64_C_SUFFIX__ = @compileError("unable to translate macro: undefined identifier `LL`");
// <builtin>:152:9
pub const __INT64_C = __helpers.LL_SUFFIX;
pub const __UINT8_TYPE__ = u8;
pub const __UINT8_FMTo__ = "hho";
pub const __UINT8_FMTu__ = "hhu";
pub const __UINT8_FMTx__ = "hhx";
pub const __UINT8_FMTX__ = "hhX";
pub const __UINT8_C_SUFFIX__ = "";
pub inline fn __UINT8_C(c: anytype) @TypeOf(c) {
    _ = &c;
    return c;
}
pub const __UINT8_MAX__ = @as(c_int, 255);
pub const __INT8_MAX__ = @as(c_int, 127);
pub const __UINT16_TYPE__ = c_ushort;
pub const __UINT16_FMTo__ = "ho";
pub const __UINT16_FMTu__ = "hu";
pub const __UINT16_FMTx__ = "hx";
pub const __UINT16_FMTX__ = "hX";
pub const __UINT16_C_SUFFIX__ = "";
pub inline fn __UINT16_C(c: anytype) @TypeOf(c) {
    _ = &c;
    return c;
}
pub const __UINT16_MAX__ = __helpers.promoteIntLiteral(c_int, 65535, .decimal);
pub const __INT16_MAX__ = @as(c_int, 32767);
pub const __UINT32_TYPE__ = c_uint;
pub const __UINT32_FMTo__ = "o";
pub const __UINT32_FMTu__ = "u";
pub const __UINT32_FMTx__ = "x";
pub const __UINT32_FMTX__ = "X";
pub const __UINT32_C_SUFFIX__ = @compileError("unable to translate macro: undefined identifier `U`");
// <builtin>:177:9
pub const __UINT32_C = __helpers.U_SUFFIX;
pub const __UINT32_MAX__ = __helpers.promoteIntLiteral(c_uint, 4294967295, .decimal);
pub const __INT32_MAX__ = __helpers.promoteIntLiteral(c_int, 2147483647, .decimal);
pub const __UINT64_TYPE__ = c_ulonglong;
pub const __UINT64_FMTo__ = "llo";
pub const __UINT64_FMTu__ = "llu";
pub const __UINT64_FMTx__ = "llx";
pub const __UINT64_FMTX__ = "llX";
pub const __UINT64_C_SUFFIX__ = @compileError("unable to translate macro: undefined identifier `ULL`");
// <builtin>:186:9
pub const __UINT64_C = __helpers.ULL_SUFFIX;
pub const __UINT64_MAX__ = @as(c_ulonglong, 18446744073709551615);
pub const __INT64_MAX__ = @as(c_longlong, 9223372036854775807);
pub const __INT_LEAST8_TYPE__ = i8;
pub const __INT_LEAST8_MAX__ = @as(c_int, 127);
pub const __INT_LEAST8_WIDTH__ = @as(c_int, 8);
pub const INT_LEAST8_FMTd__ = "hhd";
pub const INT_LEAST8_FMTi__ = "hhi";
pub const __UINT_LEAST8_TYPE__ = u8;
pub const __UINT_LEAST8_MAX__ = @as(c_int, 255);
pub const UINT_LEAST8_FMTo__ = "hho";
pub const UINT_LEAST8_FMTu__ = "hhu";
pub const UINT_LEAST8_FMTx__ = "hhx";
pub const UINT_LEAST8_FMTX__ = "hhX";
pub const __INT_FAST8_TYPE__ = i8;
pub const __INT_FAST8_MAX__ = @as(c_int, 127);
pub const __INT_FAST8_WIDTH__ = @as(c_int, 8);
pub const INT_FAST8_FMTd__ = "hhd";
pub const INT_FAST8_FMTi__ = "hhi";
pub const __UINT_FAST8_TYPE__ = u8;
pub const __UINT_FAST8_MAX__ = @as(c_int, 255);
pub const UINT_FAST8_FMTo__ = "hho";
pub const UINT_FAST8_FMTu__ = "hhu";
pub const UINT_FAST8_FMTx__ = "hhx";
pub const UINT_FAST8_FMTX__ = "hhX";
pub const __INT_LEAST16_TYPE__ = c_short;
pub const __INT_LEAST16_MAX__ = @as(c_int, 32767);
pub const __INT_LEAST16_WIDTH__ = @as(c_int, 16);
pub const INT_LEAST16_FMTd__ = "hd";
pub const INT_LEAST16_FMTi__ = "hi";
pub const __UINT_LEAST16_TYPE__ = c_ushort;
pub const __UINT_LEAST16_MAX__ = __helpers.promoteIntLiteral(c_int, 65535, .decimal);
pub const UINT_LEAST16_FMTo__ = "ho";
pub const UINT_LEAST16_FMTu__ = "hu";
pub const UINT_LEAST16_FMTx__ = "hx";
pub const UINT_LEAST16_FMTX__ = "hX";
pub const __INT_FAST16_TYPE__ = c_short;
pub const __INT_FAST16_MAX__ = @as(c_int, 32767);
pub const __INT_FAST16_WIDTH__ = @as(c_int, 16);
pub const INT_FAST16_FMTd__ = "hd";
pub const INT_FAST16_FMTi__ = "hi";
pub const __UINT_FAST16_TYPE__ = c_ushort;
pub const __UINT_FAST16_MAX__ = __helpers.promoteIntLiteral(c_int, 65535, .decimal);
pub const UINT_FAST16_FMTo__ = "ho";
pub const UINT_FAST16_FMTu__ = "hu";
pub const UINT_FAST16_FMTx__ = "hx";
pub const UINT_FAST16_FMTX__ = "hX";
pub const __INT_LEAST32_TYPE__ = c_int;
pub const __INT_LEAST32_MAX__ = __helpers.promoteIntLiteral(c_int, 2147483647, .decimal);
pub const __INT_LEAST32_WIDTH__ = @as(c_int, 32);
pub const INT_LEAST32_FMTd__ = "d";
pub const INT_LEAST32_FMTi__ = "i";
pub const __UINT_LEAST32_TYPE__ = c_uint;
pub const __UINT_LEAST32_MAX__ = __helpers.promoteIntLiteral(c_uint, 4294967295, .decimal);
pub const UINT_LEAST32_FMTo__ = "o";
pub const UINT_LEAST32_FMTu__ = "u";
pub const UINT_LEAST32_FMTx__ = "x";
pub const UINT_LEAST32_FMTX__ = "X";
pub const __INT_FAST32_TYPE__ = c_int;
pub const __INT_FAST32_MAX__ = __helpers.promoteIntLiteral(c_int, 2147483647, .decimal);
pub const __INT_FAST32_WIDTH__ = @as(c_int, 32);
pub const INT_FAST32_FMTd__ = "d";
pub const INT_FAST32_FMTi__ = "i";
pub const __UINT_FAST32_TYPE__ = c_uint;
pub const __UINT_FAST32_MAX__ = __helpers.promoteIntLiteral(c_uint, 4294967295, .decimal);
pub const UINT_FAST32_FMTo__ = "o";
pub const UINT_FAST32_FMTu__ = "u";
pub const UINT_FAST32_FMTx__ = "x";
pub const UINT_FAST32_FMTX__ = "X";
pub const __INT_LEAST64_TYPE__ = c_longlong;
pub const __INT_LEAST64_MAX__ = @as(c_longlong, 9223372036854775807);
pub const __INT_LEAST64_WIDTH__ = @as(c_int, 64);
pub const INT_LEAST64_FMTd__ = "lld";
pub const INT_LEAST64_FMTi__ = "lli";
pub const __UINT_LEAST64_TYPE__ = c_ulonglong;
pub const __UINT_LEAST64_MAX__ = @as(c_ulonglong, 18446744073709551615);
pub const UINT_LEAST64_FMTo__ = "llo";
pub const UINT_LEAST64_FMTu__ = "llu";
pub const UINT_LEAST64_FMTx__ = "llx";
pub const UINT_LEAST64_FMTX__ = "llX";
pub const __INT_FAST64_TYPE__ = c_longlong;
pub const __INT_FAST64_MAX__ = @as(c_longlong, 9223372036854775807);
pub const __INT_FAST64_WIDTH__ = @as(c_int, 64);
pub const INT_FAST64_FMTd__ = "lld";
pub const INT_FAST64_FMTi__ = "lli";
pub const __UINT_FAST64_TYPE__ = c_ulonglong;
pub const __UINT_FAST64_MAX__ = @as(c_ulonglong, 18446744073709551615);
pub const UINT_FAST64_FMTo__ = "llo";
pub const UINT_FAST64_FMTu__ = "llu";
pub const UINT_FAST64_FMTx__ = "llx";
pub const UINT_FAST64_FMTX__ = "llX";
pub const __FLT_DENORM_MIN__ = @as(f32, 1.40129846e-45);
pub const __FLT_HAS_DENORM__ = "";
pub const __FLT_DIG__ = @as(c_int, 6);
pub const __FLT_DECIMAL_DIG__ = @as(c_int, 9);
pub const __FLT_EPSILON__ = @as(f32, 1.19209290e-7);
pub const __FLT_HAS_INFINITY__ = "";
pub const __FLT_HAS_QUIET_NAN__ = "";
pub const __FLT_MANT_DIG__ = @as(c_int, 24);
pub const __FLT_MAX_10_EXP__ = @as(c_int, 38);
pub const __FLT_MAX_EXP__ = @as(c_int, 128);
pub const __FLT_MAX__ = @as(f32, 3.40282347e+38);
pub const __FLT_MIN_10_EXP__ = -@as(c_int, 37);
pub const __FLT_MIN_EXP__ = -@as(c_int, 125);
pub const __FLT_MIN__ = @as(f32, 1.17549435e-38);
pub const __DBL_DENORM_MIN__ = @as(f64, 4.9406564584124654e-324);
pub const __DBL_HAS_DENORM__ = "";
pub const __DBL_DIG__ = @as(c_int, 15);
pub const __DBL_DECIMAL_DIG__ = @as(c_int, 17);
pub const __DBL_EPSILON__ = @as(f64, 2.2204460492503131e-16);
pub const __DBL_HAS_INFINITY__ = "";
pub const __DBL_HAS_QUIET_NAN__ = "";
pub const __DBL_MANT_DIG__ = @as(c_int, 53);
pub const __DBL_MAX_10_EXP__ = @as(c_int, 308);
pub const __DBL_MAX_EXP__ = @as(c_int, 1024);
pub const __DBL_MAX__ = @as(f64, 1.7976931348623157e+308);
pub const __DBL_MIN_10_EXP__ = -@as(c_int, 307);
pub const __DBL_MIN_EXP__ = -@as(c_int, 1021);
pub const __DBL_MIN__ = @as(f64, 2.2250738585072014e-308);
pub const __LDBL_DENORM_MIN__ = @as(c_longdouble, 6.47517511943802511092443895822764655e-4966);
pub const __LDBL_HAS_DENORM__ = "";
pub const __LDBL_DIG__ = @as(c_int, 33);
pub const __LDBL_DECIMAL_DIG__ = @as(c_int, 36);
pub const __LDBL_EPSILON__ = @as(c_longdouble, 1.92592994438723585305597794258492732e-34);
pub const __LDBL_HAS_INFINITY__ = "";
pub const __LDBL_HAS_QUIET_NAN__ = "";
pub const __LDBL_MANT_DIG__ = @as(c_int, 113);
pub const __LDBL_MAX_10_EXP__ = @as(c_int, 4932);
pub const __LDBL_MAX_EXP__ = @as(c_int, 16384);
pub const __LDBL_MAX__ = @as(c_longdouble, 1.18973149535723176508575932662800702e+4932);
pub const __LDBL_MIN_10_EXP__ = -@as(c_int, 4931);
pub const __LDBL_MIN_EXP__ = -@as(c_int, 16381);
pub const __LDBL_MIN__ = @as(c_longdouble, 3.36210314311209350626267781732175260e-4932);
pub const __FLT_EVAL_METHOD__ = @as(c_int, 0);
pub const __FLT_RADIX__ = @as(c_int, 2);
pub const __DECIMAL_DIG__ = __LDBL_DECIMAL_DIG__;
pub const _STDLIB_H = "";
pub const __wasilibc___functions_malloc_h = "";
pub const __need_size_t = "";
pub const __need_wchar_t = "";
pub const __need_NULL = "";
pub const __STDC_VERSION_STDDEF_H__ = @as(c_long, 202311);
pub const NULL = __helpers.cast(?*anyopaque, @as(c_int, 0));
pub const offsetof = @compileError("unable to translate macro: undefined identifier `__builtin_offsetof`");
// guests/.tools/venv/lib/python3.11/site-packages/ziglang/lib/compiler/aro/include/stddef.h:18:9
pub const __wasilibc___header_stdlib_h = "";
pub const _FEATURES_H = "";
pub const _BSD_SOURCE = @as(c_int, 1);
pub const _XOPEN_SOURCE = @as(c_int, 700);
pub const __restrict = @compileError("unable to translate C expr: unexpected token 'restrict'");
// guests/.tools/venv/lib/python3.11/site-packages/ziglang/lib/libc/include/generic-musl/features.h:20:9
pub const __inline = @compileError("unable to translate C expr: unexpected token 'inline'");
// guests/.tools/venv/lib/python3.11/site-packages/ziglang/lib/libc/include/generic-musl/features.h:26:9
pub const __REDIR = @compileError("unable to translate C expr: unexpected token '__typeof__'");
// guests/.tools/venv/lib/python3.11/site-packages/ziglang/lib/libc/include/generic-musl/features.h:38:9
pub const __NEED_size_t = "";
pub const __NEED_wchar_t = "";
pub const __BYTE_ORDER = __BYTE_ORDER__;
pub const __LONG_MAX = __LONG_MAX__;
pub const __DEFINED_wchar_t = "";
pub const __LITTLE_ENDIAN = @as(c_int, 1234);
pub const __BIG_ENDIAN = @as(c_int, 4321);
pub const __USE_TIME_BITS64 = @as(c_int, 1);
pub const __DEFINED_size_t = "";
pub const __wasilibc___struct_timeval_h = "";
pub const __wasilibc___typedef_time_t_h = "";
pub const __wasilibc___typedef_suseconds_t_h = "";
pub const __wasilibc___struct_timespec_h = "";
pub const __wasilibc___struct_iovec_h = "";
pub const EXIT_FAILURE = @as(c_int, 1);
pub const EXIT_SUCCESS = @as(c_int, 0);
pub const MB_CUR_MAX = __ctype_get_mb_cur_max();
pub const RAND_MAX = __helpers.promoteIntLiteral(c_int, 0x7fffffff, .hex);
pub const _ALLOCA_H = "";
pub const __CLANG_STDINT_H = "";
pub const _STDINT_H = "";
pub const __NEED_int8_t = "";
pub const __NEED_int16_t = "";
pub const __NEED_int32_t = "";
pub const __NEED_int64_t = "";
pub const __NEED_uint8_t = "";
pub const __NEED_uint16_t = "";
pub const __NEED_uint32_t = "";
pub const __NEED_uint64_t = "";
pub const __NEED_intptr_t = "";
pub const __NEED_uintptr_t = "";
pub const __NEED_intmax_t = "";
pub const __NEED_uintmax_t = "";
pub const __DEFINED_uintptr_t = "";
pub const __DEFINED_intptr_t = "";
pub const __DEFINED_int8_t = "";
pub const __DEFINED_int16_t = "";
pub const __DEFINED_int32_t = "";
pub const __DEFINED_int64_t = "";
pub const __DEFINED_intmax_t = "";
pub const __DEFINED_uint8_t = "";
pub const __DEFINED_uint16_t = "";
pub const __DEFINED_uint32_t = "";
pub const __DEFINED_uint64_t = "";
pub const __DEFINED_uintmax_t = "";
pub const INT8_MIN = -@as(c_int, 1) - @as(c_int, 0x7f);
pub const INT16_MIN = -@as(c_int, 1) - @as(c_int, 0x7fff);
pub const INT32_MIN = -@as(c_int, 1) - __helpers.promoteIntLiteral(c_int, 0x7fffffff, .hex);
pub const INT64_MIN = -@as(c_int, 1) - __helpers.promoteIntLiteral(c_int, 0x7fffffffffffffff, .hex);
pub const INT8_MAX = @as(c_int, 0x7f);
pub const INT16_MAX = @as(c_int, 0x7fff);
pub const INT32_MAX = __helpers.promoteIntLiteral(c_int, 0x7fffffff, .hex);
pub const INT64_MAX = __helpers.promoteIntLiteral(c_int, 0x7fffffffffffffff, .hex);
pub const UINT8_MAX = @as(c_int, 0xff);
pub const UINT16_MAX = __helpers.promoteIntLiteral(c_int, 0xffff, .hex);
pub const UINT32_MAX = __helpers.promoteIntLiteral(c_uint, 0xffffffff, .hex);
pub const UINT64_MAX = __helpers.promoteIntLiteral(c_uint, 0xffffffffffffffff, .hex);
pub const INT_FAST8_MIN = INT8_MIN;
pub const INT_FAST64_MIN = INT64_MIN;
pub const INT_LEAST8_MIN = INT8_MIN;
pub const INT_LEAST16_MIN = INT16_MIN;
pub const INT_LEAST32_MIN = INT32_MIN;
pub const INT_LEAST64_MIN = INT64_MIN;
pub const INT_FAST8_MAX = INT8_MAX;
pub const INT_FAST64_MAX = INT64_MAX;
pub const INT_LEAST8_MAX = INT8_MAX;
pub const INT_LEAST16_MAX = INT16_MAX;
pub const INT_LEAST32_MAX = INT32_MAX;
pub const INT_LEAST64_MAX = INT64_MAX;
pub const UINT_FAST8_MAX = UINT8_MAX;
pub const UINT_FAST64_MAX = UINT64_MAX;
pub const UINT_LEAST8_MAX = UINT8_MAX;
pub const UINT_LEAST16_MAX = UINT16_MAX;
pub const UINT_LEAST32_MAX = UINT32_MAX;
pub const UINT_LEAST64_MAX = UINT64_MAX;
pub const INTMAX_MIN = INT64_MIN;
pub const INTMAX_MAX = INT64_MAX;
pub const UINTMAX_MAX = UINT64_MAX;
pub const WINT_MIN = @as(c_uint, 0);
pub const WINT_MAX = UINT32_MAX;
pub const WCHAR_MAX = __helpers.promoteIntLiteral(c_int, 0x7fffffff, .hex) + '\x00';
pub const WCHAR_MIN = (-@as(c_int, 1) - __helpers.promoteIntLiteral(c_int, 0x7fffffff, .hex)) + '\x00';
pub const SIG_ATOMIC_MIN = INT32_MIN;
pub const SIG_ATOMIC_MAX = INT32_MAX;
pub const INT_FAST16_MIN = INT16_MIN;
pub const INT_FAST32_MIN = INT32_MIN;
pub const INT_FAST16_MAX = INT16_MAX;
pub const INT_FAST32_MAX = INT32_MAX;
pub const UINT_FAST16_MAX = UINT16_MAX;
pub const UINT_FAST32_MAX = UINT32_MAX;
pub const INTPTR_MIN = INT32_MIN;
pub const INTPTR_MAX = INT32_MAX;
pub const UINTPTR_MAX = UINT32_MAX;
pub const PTRDIFF_MIN = INT32_MIN;
pub const PTRDIFF_MAX = INT32_MAX;
pub const SIZE_MAX = UINT32_MAX;
pub inline fn INT8_C(c: anytype) @TypeOf(c) {
    _ = &c;
    return c;
}
pub inline fn INT16_C(c: anytype) @TypeOf(c) {
    _ = &c;
    return c;
}
pub inline fn INT32_C(c: anytype) @TypeOf(c) {
    _ = &c;
    return c;
}
pub inline fn UINT8_C(c: anytype) @TypeOf(c) {
    _ = &c;
    return c;
}
pub inline fn UINT16_C(c: anytype) @TypeOf(c) {
    _ = &c;
    return c;
}
pub const UINT32_C = __helpers.U_SUFFIX;
pub const INT64_C = __helpers.LL_SUFFIX;
pub const UINT64_C = __helpers.ULL_SUFFIX;
pub const INTMAX_C = __helpers.LL_SUFFIX;
pub const UINTMAX_C = __helpers.ULL_SUFFIX;
pub const __BINDINGS_PLUGIN_H = "";
pub const @"bool" = bool;
pub const @"true" = @as(c_int, 1);
pub const @"false" = @as(c_int, 0);
pub const __bool_true_false_are_defined = @as(c_int, 1);
pub const QLIK_SSE_MODELS_FAULT_NAME = @as(c_int, 0);
pub const QLIK_SSE_MODELS_FAULT_LIMIT = @as(c_int, 1);
pub const QLIK_SSE_MODELS_FAULT_MISSING = @as(c_int, 2);
pub const QLIK_SSE_MODELS_FAULT_STORAGE = @as(c_int, 3);
pub const QLIK_SSE_MODELS_FAULT_OFF = @as(c_int, 4);
pub const QLIK_SSE_TYPES_DATA_TYPE_TEXT = @as(c_int, 0);
pub const QLIK_SSE_TYPES_DATA_TYPE_NUMERIC = @as(c_int, 1);
pub const QLIK_SSE_TYPES_DATA_TYPE_DUAL = @as(c_int, 2);
pub const QLIK_SSE_TYPES_FUNCTION_TYPE_SCALAR = @as(c_int, 0);
pub const QLIK_SSE_TYPES_FUNCTION_TYPE_AGGREGATION = @as(c_int, 1);
pub const QLIK_SSE_TYPES_FUNCTION_TYPE_TENSOR = @as(c_int, 2);
pub const QLIK_SSE_TYPES_MODE_PER_BATCH = @as(c_int, 0);
pub const QLIK_SSE_TYPES_MODE_PER_CALL = @as(c_int, 1);
pub const QLIK_SSE_TYPES_COLUMN_TEXT = @as(c_int, 0);
pub const QLIK_SSE_TYPES_COLUMN_NUMERIC = @as(c_int, 1);
pub const QLIK_SSE_TYPES_COLUMN_DUAL = @as(c_int, 2);
pub const timeval = struct_timeval;
pub const timespec = struct_timespec;
pub const iovec = struct_iovec;
