output "hostname" {
  description = "The public hostname of remote-agent."
  value       = local.hostname
}

output "public_url" {
  description = "Open this on the phone."
  value       = "https://${local.hostname}"
}

output "tunnel_id" {
  description = "The tunnel's id."
  value       = cloudflare_zero_trust_tunnel_cloudflared.agent.id
}

output "tunnel_token" {
  description = "What cloudflared runs the tunnel with: save it to a 0600 file for --tunnel-token-file."
  value       = data.cloudflare_zero_trust_tunnel_cloudflared_token.agent.token
  sensitive   = true
}

output "access_application_aud" {
  description = "The Access application's audience tag, when access_enabled (null otherwise)."
  value       = one(cloudflare_zero_trust_access_application.agent[*].aud)
}
