#!/usr/bin/env sh
# Installs remote-agent from this source tree: builds the release binary with cargo, puts it in ~/.local/bin
# (or $PREFIX/bin), and says what else is needed. Usage: packaging/install.sh [--service]
set -eu
cd "$(dirname "$0")/.."
prefix="${PREFIX:-$HOME/.local}"

command -v cargo >/dev/null 2>&1 || {
  echo "cargo is needed: install Rust from your package manager or rustup.rs" >&2
  exit 1
}
cargo build --release --locked
mkdir -p "$prefix/bin"
install -m 0755 target/release/remote-agent "$prefix/bin/remote-agent"
echo "installed $prefix/bin/remote-agent"
case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) echo "note: $prefix/bin is not on your PATH" ;;
esac

command -v claude >/dev/null 2>&1 || echo "next: install the Claude Code CLI: npm install -g @anthropic-ai/claude-code"
command -v cloudflared >/dev/null 2>&1 || echo "next: install cloudflared (brew install cloudflared, or pkg.cloudflare.com) for the public URL"

if [ "${1:-}" = "--service" ]; then
  "$prefix/bin/remote-agent" service install
else
  echo "run it: remote-agent up   (in the project Claude should work on); at login: remote-agent service install"
fi
