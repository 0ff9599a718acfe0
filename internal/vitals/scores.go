package vitals

import "sort"

// Binary-classification scores of risk scores against labels (1 = the
// event follows within the horizon), for a risk model and NEWS2 alike.
// scores and y pair up by index; elements beyond the shorter are ignored.

// pair trims scores and y to their common length.
func pair(scores []float64, y []int32) ([]float64, []int32) {
	n := min(len(scores), len(y))
	return scores[:n], y[:n]
}

// rankOrder returns the indices of scores in descending order.
func rankOrder(scores []float64) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	return idx
}

// AUROC is the area under the ROC curve: the probability that a positive
// scores above a negative, ties counting half (Mann-Whitney U). 0 when a
// class is absent.
func AUROC(scores []float64, y []int32) float64 {
	scores, y = pair(scores, y)
	idx := rankOrder(scores)
	var pos, neg, area, negAbove float64
	for i := 0; i < len(idx); {
		j := i
		var p, n float64
		for ; j < len(idx) && scores[idx[j]] == scores[idx[i]]; j++ {
			if y[idx[j]] == 1 {
				p++
			} else {
				n++
			}
		}
		// positives in this tie group beat every negative below it: count
		// the negatives above instead and subtract at the end.
		area += p * (negAbove + n/2)
		negAbove += n
		pos += p
		neg += n
		i = j
	}
	if pos == 0 || neg == 0 {
		return 0
	}
	return 1 - area/(pos*neg)
}

// AUPRC is the area under the precision-recall curve as average precision:
// the mean, over positives, of the precision at the threshold that admits
// them (a tie group admitted at once). Its chance level is the positive
// rate, not 0.5, which is why clinicians read it for rare events.
func AUPRC(scores []float64, y []int32) float64 {
	scores, y = pair(scores, y)
	idx := rankOrder(scores)
	var tp, fp, pos, ap float64
	for _, v := range y {
		pos += float64(v)
	}
	if pos == 0 {
		return 0
	}
	for i := 0; i < len(idx); {
		j := i
		var p float64
		for ; j < len(idx) && scores[idx[j]] == scores[idx[i]]; j++ {
			if y[idx[j]] == 1 {
				p++
			}
		}
		tp += p
		fp += float64(j-i) - p
		ap += p * tp / (tp + fp)
		i = j
	}
	return ap / pos
}

// AtThreshold returns sensitivity and specificity when score >= thr
// raises an alert.
func AtThreshold(scores []float64, y []int32, thr float64) (sens, spec float64) {
	scores, y = pair(scores, y)
	var tp, fn, tn, fp float64
	for i, s := range scores {
		switch {
		case y[i] == 1 && s >= thr:
			tp++
		case y[i] == 1:
			fn++
		case s >= thr:
			fp++
		default:
			tn++
		}
	}
	if tp+fn > 0 {
		sens = tp / (tp + fn)
	}
	if tn+fp > 0 {
		spec = tn / (tn + fp)
	}
	return sens, spec
}

// ThresholdFor returns the highest score threshold whose sensitivity
// reaches target (so the specificity at that sensitivity is the best the
// scores allow).
func ThresholdFor(scores []float64, y []int32, target float64) float64 {
	scores, y = pair(scores, y)
	idx := rankOrder(scores)
	var pos, tp float64
	for _, v := range y {
		pos += float64(v)
	}
	if pos == 0 || len(idx) == 0 {
		return 0
	}
	for i := 0; i < len(idx); {
		j := i
		for ; j < len(idx) && scores[idx[j]] == scores[idx[i]]; j++ {
			tp += float64(y[idx[j]])
		}
		if tp/pos >= target {
			return scores[idx[i]]
		}
		i = j
	}
	return scores[idx[len(idx)-1]]
}

// PositiveRate is the fraction of labels that are 1: the chance level of
// AUPRC, and 1 - the accuracy of always answering "stable".
func PositiveRate(y []int32) float64 {
	var n float64
	for _, v := range y {
		n += float64(v)
	}
	return n / float64(max(1, len(y)))
}

// ValidationRows marks the readings a device keeps back for validation:
// every fifth patient's (the 5th, 10th, ... patient in the order the
// readings list them), so that a patient's correlated readings fall on
// one side of the split and each case-mix profile has some.
func ValidationRows(recs []Record) []bool {
	held := make([]bool, len(recs))
	for j, p := range PatientOrdinals(recs) {
		held[j] = p%5 == 4
	}
	return held
}

// PatientOrdinals numbers the patients of recs 0, 1, ... in order of
// appearance (a patient's readings are consecutive, as Generate writes
// them) and returns each record's patient number.
func PatientOrdinals(recs []Record) []int {
	ords := make([]int, len(recs))
	patient, prev := -1, ""
	for j := range recs {
		if j == 0 || recs[j].Patient != prev {
			patient, prev = patient+1, recs[j].Patient
		}
		ords[j] = patient
	}
	return ords
}

// PreprocessState is the vitals-preprocess module's state every device
// starts from: its running statistics seeded with the population
// reference (Reference) at a weight of a million readings, so that every
// device z-normalises on one shared, effectively fixed scale. Left to its
// own running statistics each device normalises its ward's case-mix away
// (a cardiology ward's 83 bpm becomes its 0) and its first readings on a
// handful of samples, and a federated model is averaged over devices
// whose inputs mean different things.
func PreprocessState() map[string]any {
	const n = 1_000_000
	stats := map[string]any{}
	for i, s := range Reference() {
		stats[Fields[i]] = map[string]any{"n": uint64(n), "mean": s.Mean, "m2": s.SD * s.SD * (n - 1)}
	}
	return map[string]any{"stats": stats}
}
