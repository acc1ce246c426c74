# The GKE Autopilot cluster that runs the long-running pieces (Billing Worker, Analytics Pipeline):
# private nodes in their own VPC, workload identity, REGULAR release channel. The kubernetes provider
# is not used: namespaces and Kubernetes service accounts are created with kubectl (terraform/README.md).

resource "google_compute_network" "gke" {
  project                 = var.project_id
  name                    = "${var.cluster.name}-gke"
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "gke" {
  project                  = var.project_id
  region                   = var.region
  name                     = "${var.cluster.name}-gke-nodes"
  network                  = google_compute_network.gke.id
  ip_cidr_range            = var.cluster.subnet_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = var.cluster.pods_cidr
  }

  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = var.cluster.services_cidr
  }

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Nothing reaches the nodes unless GKE's own rules (priority 1000) allow it; denied attempts are logged.
resource "google_compute_firewall" "deny_ingress" {
  project   = var.project_id
  name      = "${var.cluster.name}-gke-deny-ingress"
  network   = google_compute_network.gke.id
  direction = "INGRESS"
  priority  = 65534

  source_ranges = ["0.0.0.0/0"]

  deny {
    protocol = "all"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# Private nodes have no public address: Cloud NAT gives them egress (image pulls, partner APIs).
resource "google_compute_router" "gke" {
  project = var.project_id
  region  = var.region
  name    = "${var.cluster.name}-gke"
  network = google_compute_network.gke.id
}

resource "google_compute_router_nat" "gke" {
  project                            = var.project_id
  region                             = var.region
  name                               = "${var.cluster.name}-gke"
  router                             = google_compute_router.gke.name
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# Nodes run as their own account (not the Compute Engine default, which often holds Editor) with the
# two roles node agents need to ship logs and metrics.
resource "google_service_account" "nodes" {
  project      = var.project_id
  account_id   = "${var.cluster.name}-gke-nodes"
  display_name = "GKE nodes of ${var.cluster.name}"
}

resource "google_project_iam_member" "nodes_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

resource "google_project_iam_member" "nodes_metric_writer" {
  project = var.project_id
  role    = "roles/monitoring.metricWriter"
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

resource "google_container_cluster" "autopilot" {
  #checkov:skip=CKV_GCP_66:Binary Authorization needs an attestation pipeline the platform does not have yet; images come from the team's own registry.
  #checkov:skip=CKV_GCP_24:PodSecurityPolicy was removed from Kubernetes; Autopilot enforces its own baseline pod security.
  #checkov:skip=CKV_GCP_12:Autopilot always runs GKE Dataplane V2, which enforces NetworkPolicy; network_policy cannot be set on Autopilot.
  #checkov:skip=CKV_GCP_61:Autopilot manages node networking (intranode visibility is not configurable there); VPC flow logs are on the subnet.
  #checkov:skip=CKV_GCP_69:Autopilot always runs the GKE metadata server (workload identity); node_config cannot be set on Autopilot.
  #checkov:skip=CKV_GCP_65:Google Groups for RBAC needs a Workspace gke-security-groups group the organisation has not provided; access is by IAM.
  project             = var.project_id
  name                = var.cluster.name
  location            = var.region
  enable_autopilot    = true
  deletion_protection = var.deletion_protection
  network             = google_compute_network.gke.id
  subnetwork          = google_compute_subnetwork.gke.id
  resource_labels     = { component = "long-running-workloads" }

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  release_channel {
    channel = "REGULAR"
  }

  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = var.cluster.private_endpoint
    master_ipv4_cidr_block  = var.cluster.master_ipv4_cidr_block
  }

  master_authorized_networks_config {
    gcp_public_cidrs_access_enabled = false

    dynamic "cidr_blocks" {
      for_each = var.cluster.master_authorized_networks
      content {
        cidr_block   = cidr_blocks.value.cidr_block
        display_name = cidr_blocks.value.display_name
      }
    }
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  cluster_autoscaling {
    auto_provisioning_defaults {
      service_account = google_service_account.nodes.email
      oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    }
  }

  depends_on = [google_project_iam_member.nodes_log_writer, google_project_iam_member.nodes_metric_writer]
}

# One Google service account per workload, impersonated by exactly one Kubernetes service account.
resource "google_service_account" "workload" {
  for_each = var.workloads

  project      = var.project_id
  account_id   = each.key
  display_name = "GKE workload ${each.key}"
  description  = "Impersonated by ${each.value.namespace}/${each.value.ksa} through workload identity."
}

resource "google_service_account_iam_member" "workload_identity" {
  for_each = var.workloads

  service_account_id = google_service_account.workload[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${each.value.namespace}/${each.value.ksa}]"

  # The workload identity pool exists once the cluster does.
  depends_on = [google_container_cluster.autopilot]
}

# Firestore has no narrower IAM scope than the project: workloads that read and write documents (the
# outbox relay marks the entries it republished) get roles/datastore.user, as the functions do.
resource "google_project_iam_member" "workload_datastore" {
  for_each = { for name, w in var.workloads : name => w if w.firestore }

  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.workload[each.key].email}"
}
