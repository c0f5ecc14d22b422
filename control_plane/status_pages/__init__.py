"""Status pages: pages and their components, their health (status, uptime), their public view,
custom domains and their verification, and incidents declared on them by hand."""
