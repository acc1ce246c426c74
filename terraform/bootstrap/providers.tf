# No user_project_override here: on an empty project the Service Usage and Cloud Resource Manager APIs
# this stage enables are not on yet, so calls are billed to the credentials' own quota project.
provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}
