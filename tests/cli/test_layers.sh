#!/usr/bin/env bash
# test_layers.sh -- the module arrows hold, in the sources and in the objects.
#
# The allowed arrows are read from CMakeLists.txt (the CONVBI_DEPS_<module>
# lines), the one place that states them.  Three checks:
#  1. every `#include "X/..."` in src/<m>/ names m itself or a module m
#     may use;
#  2. an include upward fails to compile with m's include path (a probe
#     file in db including flow/flow.h), while one downward compiles;
#  3. no object of a module refers to a symbol defined in a module it may
#     not use (nm), e.g. no util object calls into api; the tools (cli,
#     serve: the modules outside CONVBI_MODULES) may call the public API
#     (convbi_*) besides util.
. "$(dirname "$0")/lib.sh"
: "${SOURCE_DIR:?}"
SRC=$SOURCE_DIR/src
mods=$(ls "$SRC")
libmods=$(sed -n 's/^set(CONVBI_MODULES \([^)]*\)).*/\1/p' "$SOURCE_DIR/CMakeLists.txt")
[ -n "$libmods" ] || bad "no set(CONVBI_MODULES ...) line in CMakeLists.txt"
deps_of() { sed -n "s/^set(CONVBI_DEPS_$1\( \(.*\)\)\?)$/\2/p" "$SOURCE_DIR/CMakeLists.txt"; }
for m in $mods; do
  grep -q "^set(CONVBI_DEPS_$m[ )]" "$SOURCE_DIR/CMakeLists.txt" || bad "module $m has no CONVBI_DEPS_$m line in CMakeLists.txt"
done

# 1. includes
wrong=0
for m in $mods; do
  allowed=" $m $(deps_of "$m") "
  while IFS=: read -r file line inc; do
    dir=${inc#*\"}; dir=${dir%%/*}
    [ -d "$SRC/$dir" ] || continue          # convbi/ (the public header) and system headers
    case "$allowed" in *" $dir "*) ;; *) bad "$file:$line includes $dir/, above $m (allowed: $allowed)"; wrong=1;; esac
  done < <(grep -n '#include "' "$SRC/$m"/*.[ch] 2>/dev/null | sed 's/^\([^:]*\):\([0-9]*\):/\1:\2:/')
done
[ $wrong = 0 ] && ok "every include in src/ points down or sideways within its module"

# 2. the build refuses an upward include
printf '#include "flow/flow.h"\n' > "$T/up.c"
printf '#include "db/exec.h"\n#include "util/buf.h"\n' > "$T/down.c"
CCMD="cc -std=c11 -D_GNU_SOURCE -fsyntax-only -I$SOURCE_DIR/include -I$BUILD_DIR/layers/db"
if $CCMD "$T/up.c" 2>"$T/up.err"; then bad "db including flow/flow.h compiled"; else
  grep -q "flow/flow.h" "$T/up.err" && ok "db including flow/flow.h does not compile" || bad "unexpected error: $(cat "$T/up.err")"; fi
check "db including db/ and util/ headers compiles" $CCMD "$T/down.c"

# 3. symbols: what each module's objects need must come from itself, its
# dependencies or outside convbi
objdir() { echo "$BUILD_DIR/CMakeFiles/convbi_mod_$1.dir/src/$1"; }
for m in $mods; do
  [ -d "$(objdir "$m")" ] || continue
  nm --defined-only -g "$(objdir "$m")"/*.o 2>/dev/null | awk 'NF == 3 { print $3 }' | sort -u > "$T/def.$m"
done
wrong=0
for m in $mods; do
  [ -f "$T/def.$m" ] || continue
  nm -u "$(objdir "$m")"/*.o 2>/dev/null | awk '{ print $NF }' | sort -u > "$T/undef.$m"
  allowed=" $m $(deps_of "$m") "
  for other in $mods; do
    case "$allowed" in *" $other "*) continue;; esac
    [ -f "$T/def.$other" ] || continue
    hits=$(comm -12 "$T/undef.$m" "$T/def.$other")
    case " $libmods " in *" $m "*) ;; *) hits=$(printf '%s\n' "$hits" | grep -v '^convbi_');; esac
    hits=$(printf '%s' "$hits" | tr '\n' ' ')
    [ -n "$hits" ] && { bad "$m refers to $other's symbols: $hits"; wrong=1; }
  done
done
[ $wrong = 0 ] && ok "no module's objects refer to a symbol of a module above it"
finish
