# Existing stacks' state names this module: dynamic providers are pickled by reference. Keep it.
from components.cluster.certificates import ServerCertificate, ServerCertificateProvider, SiteCa, SiteCaProvider  # noqa: F401
