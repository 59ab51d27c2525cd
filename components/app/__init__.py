"""The app tier: the platform's services (api, web, workers), their image builds and migrations."""
