package security_test

// labelCases: labels are an index, never an authority.
var labelCases = []securityCase{}
