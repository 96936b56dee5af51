# Shared by the scripts in tools/: sourced, never run.

SIGIL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

sigil_log() { printf '%s\n' "sigil: $*" >&2; }

# Installs the Debian packages of tools/packages.txt that are missing; silent when none is.
sigil_install_packages() {
  local wanted missing=()
  wanted=$(grep -Ev '^\s*(#|$)' "$SIGIL_ROOT/tools/packages.txt")
  for pkg in $wanted; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    sigil_log "missing Debian packages: ${missing[*]}; run as root or install them"
    return 1
  fi
  sigil_log "installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Prints the build folder for the sanitizers named in $SIGIL_SANITIZE (empty: none).
sigil_build_dir() {
  case "${SIGIL_SANITIZE:-}" in
    "") echo "$SIGIL_ROOT/build" ;;
    *) echo "$SIGIL_ROOT/build-$(echo "$SIGIL_SANITIZE" | tr ',' '-')" ;;
  esac
}

# Configures (once) and builds the tree in $(sigil_build_dir).
sigil_build() {
  local dir; dir=$(sigil_build_dir)
  if [ ! -f "$dir/build.ninja" ]; then
    local opts=()
    if [ -n "${SIGIL_SANITIZE:-}" ]; then
      opts+=("-Db_sanitize=$SIGIL_SANITIZE")
    fi
    meson setup "$dir" "$SIGIL_ROOT" "${opts[@]}" >/dev/null
  fi
  ninja -C "$dir" >/dev/null || ninja -C "$dir"  # on failure, the second run prints the errors
}
