// The service worker: caches the app shell, never API answers.
