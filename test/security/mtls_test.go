package security_test

// mtlsCases: who may call the webhook: the API server, authenticated by its client certificate.
var mtlsCases = []securityCase{}
