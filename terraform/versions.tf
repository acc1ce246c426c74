terraform {
  required_version = ">= 1.6"

  required_providers {
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    time = {
      source  = "hashicorp/time"
      version = "~> 0.12"
    }
  }

  # Partial configuration: the bucket and prefix come from environments/<env>.gcs.tfbackend
  #   terraform init -reconfigure -backend-config=environments/dev.gcs.tfbackend
  # or from flags: -backend-config="bucket=<state bucket>" -backend-config="prefix=cmp/dev".
  backend "gcs" {}
}
