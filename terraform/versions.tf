terraform {
  required_version = ">= 1.5"

  required_providers {
    cloudflare = {
      source  = "cloudflare/cloudflare"
      version = "~> 5.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

# The API token comes from CLOUDFLARE_API_TOKEN; it needs Account > Cloudflare Tunnel > Edit and
# Zone > DNS > Edit on the zone.
provider "cloudflare" {}
