package security_test

// proofCases: a claim is proven by its WFE, not believed; the rate limit keys on a vouched identity.
var proofCases = []securityCase{}
