package gpu

var _ Backend = (*CPU)(nil)
