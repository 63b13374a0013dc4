// The web app; written in the web-app issue.
