# Homebrew formula: builds remote-agent from source.
# It is a template until the project is published: homepage, url and head name a placeholder repository and the
# sha256 is zeros, so `brew install` fails as it stands. To publish: point them at the real repository, tag a
# release, and set sha256 to `shasum -a 256` of its archive. From a checkout today, use
# `cargo install --locked --path .` (the README's way) instead.
class RemoteAgent < Formula
  desc "Drive Claude Code on this computer from a phone browser, over a Cloudflare tunnel"
  homepage "https://github.com/remote-agent/remote-agent"
  url "https://github.com/remote-agent/remote-agent/archive/refs/tags/v0.1.0.tar.gz"
  version "0.1.0"
  # Fill in with `shasum -a 256` of the release archive when tagging a release.
  sha256 "0000000000000000000000000000000000000000000000000000000000000000"
  head "https://github.com/remote-agent/remote-agent.git", branch: "main"

  depends_on "rust" => :build
  depends_on "cloudflared"

  def install
    system "cargo", "install", *std_cargo_args
  end

  def caveats
    <<~EOS
      remote-agent runs the Claude Code CLI, which is not in Homebrew:
        npm install -g @anthropic-ai/claude-code
      Then, in the project Claude should work on:
        remote-agent up
      and to run it at login:
        remote-agent service install
    EOS
  end

  test do
    assert_match version.to_s, shell_output("#{bin}/remote-agent --version")
    output = shell_output("#{bin}/remote-agent serve --port 0 2>&1", 1)
    assert_match "AUTH_USERNAME", output
  end
end
