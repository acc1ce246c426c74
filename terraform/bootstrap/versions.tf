terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    # google_project_service_identity is in the beta provider only.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.0"
    }
    time = {
      source  = "hashicorp/time"
      version = "~> 0.12"
    }
  }

  # Local state on the first apply: the bucket that will hold every state does not exist yet. Move it
  # into that bucket afterwards with backend_override.tf (README.md, "First apply").
}
