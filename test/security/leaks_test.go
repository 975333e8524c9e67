package security_test

// leakCases: what one tenant may learn of, or do to, another through the periphery.
var leakCases = []securityCase{}
