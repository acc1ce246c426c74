# What the bootstrap stage enables and grants, as data: tests/terraform evaluates this file with
# `terraform console` offline and compares it with what the platform stage (../) needs.

locals {
  state_bucket = coalesce(var.state_bucket, "${var.project_id}-tfstate")

  # APIs Terraform itself needs before it can plan the platform stage (the google provider bills calls
  # to the project: Service Usage and Cloud Resource Manager answer every plan), and the APIs whose
  # service agents are created below. The platform stage enables the rest (../variables.tf services).
  foundation_services = [
    "cloudbilling.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudtasks.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "pubsub.googleapis.com",
    "serviceusage.googleapis.com",
    "storage.googleapis.com",
  ]

  # Service agents that are created lazily, on first use, but that the platform stage names in IAM
  # grants: an apply on an empty project would fail with "service account does not exist".
  #   pubsub      dead-lettering (publisher on dead-letter topics, subscriber on push subscriptions) and
  #               token creation for push subscriptions
  #   cloudtasks  signs the queues' OIDC tokens
  service_identities = ["cloudtasks.googleapis.com", "pubsub.googleapis.com"]

  # The deployer applies the platform stage: it creates service accounts and grants roles on the
  # platform's own resources, so it administers each service the platform uses. No primitive role
  # (Owner, Editor): a role per service, each the narrowest that can create and change that resource.
  deployer_roles = [
    "roles/artifactregistry.admin",
    "roles/cloudbuild.builds.editor",
    "roles/cloudfunctions.admin",
    "roles/cloudscheduler.admin",
    "roles/cloudtasks.admin",
    "roles/compute.loadBalancerAdmin",
    "roles/compute.networkAdmin",
    "roles/compute.securityAdmin",
    "roles/container.admin",
    "roles/datastore.owner",
    "roles/firebaseauth.admin",
    "roles/iam.roleAdmin",
    "roles/iam.serviceAccountAdmin",
    "roles/iam.serviceAccountUser",
    "roles/identityplatform.admin",
    "roles/logging.configWriter",
    "roles/monitoring.alertPolicyEditor",
    "roles/monitoring.notificationChannelEditor",
    "roles/pubsub.admin",
    "roles/resourcemanager.projectIamAdmin",
    "roles/run.admin",
    "roles/secretmanager.admin",
    "roles/serviceusage.serviceUsageAdmin",
    "roles/storage.admin",
    "roles/vpcaccess.admin",
  ]
}
