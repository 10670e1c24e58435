// What the Zig guests see of C: wit-bindgen's C bindings of the plugin world, and malloc.
#include <stdlib.h>
#include "plugin.h"
