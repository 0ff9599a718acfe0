package main

import "sort"

// Binary-classification metrics of risk scores against labels (1 = the
// event follows within the horizon), for the demo's model and NEWS2.

// rankOrder returns the indices of scores in descending order.
func rankOrder(scores []float64) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	return idx
}

// auroc is the area under the ROC curve: the probability that a positive
// scores above a negative, ties counting half (Mann-Whitney U). 0 when a
// class is absent.
func auroc(scores []float64, y []int32) float64 {
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

// auprc is the area under the precision-recall curve as average precision:
// the mean, over positives, of the precision at the threshold that admits
// them (a tie group admitted at once). Its chance level is the positive
// rate, not 0.5, which is why clinicians read it for rare events.
func auprc(scores []float64, y []int32) float64 {
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

// atThreshold returns sensitivity and specificity when score >= thr
// raises an alert.
func atThreshold(scores []float64, y []int32, thr float64) (sens, spec float64) {
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

// thresholdFor returns the highest score threshold whose sensitivity
// reaches target (so the specificity at that sensitivity is the best the
// scores allow).
func thresholdFor(scores []float64, y []int32, target float64) float64 {
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
