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
# The installed program reads its own share folder, wherever the prefix is
# (attack6 F2: it read the build tree's prompts and sample database, so it
# failed on any machine without that tree): a copy moved elsewhere, its
# sample database replaced and a prompt removed, must show both.
M=$T/moved
cp -a "$P" "$M"
rm "$M/share/convbi/shop.db"
sqlite3 "$M/share/convbi/shop.db" 'CREATE TABLE moved_install_marker (id INTEGER PRIMARY KEY)'
expect_code 0 "the moved install's convbi schema runs" env -u CONVBI_PROMPTS -u CONVBI_DB "$M/bin/convbi" schema
contains "$OUT" "moved_install_marker" "the moved install's default database is its own share/convbi/shop.db"
rm "$M/share/convbi/prompts/intent.txt"
printf '{"endpoints":[{"name":"a","url":"http://127.0.0.1:9","deployment":"d","api_key":"k"}]}' >"$T/moved.json"
expect_code 2 "the moved install without intent.txt refuses to start" env -u CONVBI_PROMPTS -u CONVBI_DB "$M/bin/convbi" --config "$T/moved.json" ask "how many customers?"
contains "$ERR" "$M/share/convbi/prompts/intent.txt is missing" "the moved install reads its own prompts"
# serve rewrites its process title (argv[0]): it too finds the moved share folder
. "$SOURCE_DIR/tests/cli/serve_lib.sh"
C=$T/moved.json
CONVBI=$M/bin/convbi serve_start "$T/moved-serve.log" --prompts "$P/share/convbi/prompts"
req GET "/v1/schema?db=shop"
contains "$BODY" "moved_install_marker" "the moved install's serve answers from its own sample database"
req GET "/"
contains "$BODY" "<!doctype html>" "the moved install's serve answers its own page"
serve_stop
expect_code 0 "the example runs against the installed library without CONVBI_PROMPTS" env -u CONVBI_PROMPTS LD_LIBRARY_PATH="$LIBDIR" "$T/ex/example" "$SAMPLE_DB"
BAD=$(nm -D --defined-only "$LIB" | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^convbi_' | grep -v '^_' || true)
[ -z "$BAD" ] && ok "only convbi_* symbols are exported" || bad "exported non-convbi symbols: $(echo $BAD | head -c 300)"
finish
