"""Delivery: Kubernetes manifests (deploy/k8s), their generated parts, the post-deploy watch."""
