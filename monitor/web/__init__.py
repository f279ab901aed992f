"""The web app: operations routes now; the queue and gallery mount here as routers."""
