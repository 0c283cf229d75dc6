"""The site's cluster: the connected-registry Helm release, pull secrets, the site CA and certificate."""
