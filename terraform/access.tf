# Optional Cloudflare Access in front of the hostname (access_enabled, off by default): before a request reaches the
# tunnel, Cloudflare asks for an email address in access_emails and a one-time PIN it sends there. The tunnel, its
# ingress and the DNS record above are the same either way.
#
# Access gates everything at the hostname, remote-agent's own sign-in included: the pairing link opens only after
# the PIN, and a client that is not a browser (curl, a script using HTTP Basic) is sent to the Access login page
# instead of the API. See README.md.

# The login method: a PIN emailed to the address given. An account has at most one; set access_otp_idp_id to use
# the one it already has.
resource "cloudflare_zero_trust_access_identity_provider" "pin" {
  count = var.access_enabled && var.access_otp_idp_id == "" ? 1 : 0

  account_id = var.account_id
  name       = "One-time PIN"
  type       = "onetimepin"
  config     = {}
}

locals {
  access_idp_id = var.access_otp_idp_id != "" ? var.access_otp_idp_id : one(cloudflare_zero_trust_access_identity_provider.pin[*].id)
}

# Who gets in: the listed addresses, nobody else.
resource "cloudflare_zero_trust_access_policy" "owner" {
  count = var.access_enabled ? 1 : 0

  account_id       = var.account_id
  name             = "remote-agent ${local.hostname}: allowed emails"
  decision         = "allow"
  session_duration = var.access_session_duration
  include          = [for email in var.access_emails : { email = { email = email } }]

  lifecycle {
    precondition {
      condition     = length(var.access_emails) > 0
      error_message = "access_enabled needs at least one address in access_emails."
    }
  }
}

resource "cloudflare_zero_trust_access_application" "agent" {
  count = var.access_enabled ? 1 : 0

  account_id                = var.account_id
  name                      = "remote-agent ${local.hostname}"
  domain                    = local.hostname
  type                      = "self_hosted"
  session_duration          = var.access_session_duration
  allowed_idps              = [local.access_idp_id]
  auto_redirect_to_identity = true
  app_launcher_visible      = false

  policies = [
    {
      id         = cloudflare_zero_trust_access_policy.owner[0].id
      precedence = 1
    },
  ]
}
