"""hubspot-token-operator: keeps HubSpot credentials alive and delivered into Kubernetes Secrets."""

__version__ = "0.1.0"

GROUP = "hubspot-operator.dev"
VERSION = "v1alpha1"
PLURAL = "hubspottokens"
KIND = "HubSpotToken"
