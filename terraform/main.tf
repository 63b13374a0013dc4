locals {
  hostname = "${var.subdomain}.${var.zone_name}"
}

# The tunnel's secret: 32 random bytes, kept in the Terraform state (treat the state as a secret).
resource "random_bytes" "tunnel_secret" {
  length = 32
}

resource "cloudflare_zero_trust_tunnel_cloudflared" "agent" {
  account_id    = var.account_id
  name          = var.tunnel_name
  config_src    = "cloudflare"
  tunnel_secret = random_bytes.tunnel_secret.base64
}

# Remotely managed ingress: the hostname goes to remote-agent's tunnel listener on this computer's loopback;
# anything else gets a 404 at the edge.
resource "cloudflare_zero_trust_tunnel_cloudflared_config" "agent" {
  account_id = var.account_id
  tunnel_id  = cloudflare_zero_trust_tunnel_cloudflared.agent.id

  config = {
    ingress = [
      {
        hostname = local.hostname
        service  = "http://127.0.0.1:${var.tunnel_port}"
      },
      {
        service = "http_status:404"
      },
    ]
  }
}

resource "cloudflare_dns_record" "agent" {
  zone_id = var.zone_id
  name    = local.hostname
  type    = "CNAME"
  content = "${cloudflare_zero_trust_tunnel_cloudflared.agent.id}.cfargotunnel.com"
  proxied = true
  ttl     = 1
  comment = "remote-agent, through Cloudflare Tunnel ${var.tunnel_name}"
}

data "cloudflare_zero_trust_tunnel_cloudflared_token" "agent" {
  account_id = var.account_id
  tunnel_id  = cloudflare_zero_trust_tunnel_cloudflared.agent.id
}
