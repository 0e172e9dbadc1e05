"""What ``./deploy.sh`` runs: build, upload, lint, deploy via change sets, smoke-test, tear down."""
