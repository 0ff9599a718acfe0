package hostfuncs

// Services are the host-side services that host functions of the optional
// groups use. The command wires them (a budget ledger, HE key material, a
// federation client); a nil service makes its functions answer EDENIED or
// ESTATE with a message saying what is not configured.
type Services struct {
	Privacy *PrivacyServices
}

// CallInfo is what the host says about one entrypoint call, beyond its
// input: for example the dataset whose privacy budget the call's releases
// are charged to. The guest cannot choose it.
type CallInfo struct {
	Dataset string
}
