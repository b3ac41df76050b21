#!/usr/bin/env bash
# test_install.sh -- `cmake --install` gives the shared library, the header,
# convbi.pc and a CMake package; the example in tests/example builds against
# the installed package both ways and runs; the header compiles alone with
# -std=c11 -pedantic -Werror; the library exports only convbi_* symbols.
. "$(dirname "$0")/lib.sh"
P=$T/prefix
cmake --install "$BUILD_DIR" --prefix "$P" >"$T/install.log" 2>&1 && ok "cmake --install" || { bad "install: $(tail -5 "$T/install.log")"; finish; exit 1; }
LIB=$(ls "$P"/lib*/libconvbi.so* 2>/dev/null | head -1)
[ -n "$LIB" ] && ok "shared library installed" || bad "no libconvbi.so under $P"
[ -f "$P/include/convbi/convbi.h" ] && ok "header installed" || bad "no header"
PC=$(ls "$P"/lib*/pkgconfig/convbi.pc 2>/dev/null | head -1)
[ -n "$PC" ] && ok "convbi.pc installed" || bad "no convbi.pc"
ls "$P"/lib*/cmake/convbi/convbiConfig.cmake >/dev/null 2>&1 && ok "CMake package installed" || bad "no CMake package"
[ -f "$P/share/convbi/prompts/sql.txt" ] && ok "prompts installed" || bad "no prompts"
for f in index.html openapi.json assets/app.js assets/vendor/vega-embed.min.js assets/vendor/LICENSE-vega; do
  [ -f "$P/share/convbi/web/$f" ] && ok "the page's $f installed" || bad "no share/convbi/web/$f"
done

cmake -S "$SOURCE_DIR/tests/example" -B "$T/ex" -DCMAKE_PREFIX_PATH="$P" >"$T/ex.log" 2>&1 &&
  cmake --build "$T/ex" >>"$T/ex.log" 2>&1 && ok "example builds with find_package(convbi)" || bad "example build: $(tail -5 "$T/ex.log")"
LIBDIR=$(dirname "$LIB")
expect_code 0 "example runs against the installed library" env LD_LIBRARY_PATH="$LIBDIR" CONVBI_PROMPTS="$P/share/convbi/prompts" "$T/ex/example" "$SAMPLE_DB"
contains "$OUT" "customers" "the example printed the schema"
PKG_CONFIG_PATH=$(dirname "$PC") cc -std=c11 -o "$T/ex2" "$SOURCE_DIR/tests/example/example.c" $(PKG_CONFIG_PATH=$(dirname "$PC") pkg-config --cflags --libs convbi) 2>"$T/cc.err" &&
  ok "example builds with pkg-config" || bad "pkg-config build: $(cat "$T/cc.err")"
echo '#include <convbi/convbi.h>' > "$T/h.c"
cc -std=c11 -pedantic -Wall -Wextra -Werror -fsyntax-only -I"$P/include" "$T/h.c" 2>"$T/h.err" && ok "the header compiles alone, -std=c11 -pedantic -Werror" || bad "header: $(cat "$T/h.err")"
BAD=$(nm -D --defined-only "$LIB" | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^convbi_' | grep -v '^_' || true)
[ -z "$BAD" ] && ok "only convbi_* symbols are exported" || bad "exported non-convbi symbols: $(echo $BAD | head -c 300)"
finish
