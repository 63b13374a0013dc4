variable "account_id" {
  description = "Your Cloudflare account id (32 hex characters; the dashboard shows it on the zone's overview page)."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{32}$", var.account_id))
    error_message = "account_id must be 32 lowercase hex characters."
  }
}

variable "zone_id" {
  description = "The id of the zone (domain) the hostname goes in (32 hex characters)."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{32}$", var.zone_id))
    error_message = "zone_id must be 32 lowercase hex characters."
  }
}

variable "zone_name" {
  description = "The zone's domain name, such as example.com."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,}$", var.zone_name))
    error_message = "zone_name must be a lowercase domain name such as example.com."
  }
}

variable "subdomain" {
  description = "The name in the zone that reaches remote-agent: agent gives agent.example.com."
  type        = string
  default     = "agent"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.subdomain))
    error_message = "subdomain must be one DNS label: lowercase letters, digits and inner hyphens."
  }
}

variable "tunnel_name" {
  description = "The tunnel's name in your Cloudflare account."
  type        = string
  default     = "remote-agent"

  validation {
    condition     = length(var.tunnel_name) > 0 && length(var.tunnel_name) <= 64
    error_message = "tunnel_name must be 1 to 64 characters."
  }
}

variable "tunnel_port" {
  description = "The loopback port remote-agent listens on for the tunnel (`remote-agent up --tunnel-port`, default 8001)."
  type        = number
  default     = 8001

  validation {
    condition     = var.tunnel_port >= 1 && var.tunnel_port <= 65535 && floor(var.tunnel_port) == var.tunnel_port
    error_message = "tunnel_port must be a port number, 1 to 65535."
  }
}

variable "access_enabled" {
  description = "Put Cloudflare Access in front of the hostname: an email one-time PIN for the addresses in access_emails. The tunnel works the same with it off."
  type        = bool
  default     = false
}

variable "access_emails" {
  description = "The email addresses Access lets in (it sends each a one-time PIN); at least one when access_enabled is true."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for email in var.access_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", email))])
    error_message = "access_emails must be email addresses, such as me@example.com."
  }
}

variable "access_session_duration" {
  description = "How long a PIN sign-in lasts before Access asks again, such as 24h or 720h."
  type        = string
  default     = "720h"

  validation {
    condition     = can(regex("^[0-9]+(m|h)$", var.access_session_duration))
    error_message = "access_session_duration must be minutes or hours, such as 30m or 24h."
  }
}

variable "access_otp_idp_id" {
  description = "The id of the account's existing One-time PIN login method, if it has one (an account has at most one); empty creates it."
  type        = string
  default     = ""
}
