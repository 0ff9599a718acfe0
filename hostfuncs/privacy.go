package hostfuncs

// PrivacyServices configures the fennec_privacy group (see privacy_*.go).
type PrivacyServices struct{}
