#pragma once
// The vendored JavaScript that report.html inlines (third_party/vega), compiled into the
// binary by cmake/embed_files.cmake so the report opens offline and the program needs no
// files beside itself. Defined in the generated embedded_assets.cpp.
#include <string_view>

namespace healthgym::assets {

std::string_view vega_min_js();        // Vega 5 (third_party/vega/vega.min.js)
std::string_view vega_lite_min_js();   // Vega-Lite 5 (third_party/vega/vega-lite.min.js)
std::string_view vega_embed_min_js();  // vega-embed 6 (third_party/vega/vega-embed.min.js)

}  // namespace healthgym::assets
