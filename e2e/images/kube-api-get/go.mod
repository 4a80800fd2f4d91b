module imprint.dev/e2e/kube-api-get

go 1.26
