package note

import (
	"encoding/json"
	"testing"
)

func TestMergeKeepsFirstAppearance(t *testing.T) {
	a, b, c := Warnf("a %d", 1), Infof("b"), Warnf("c")
	got := Merge([]Note{a}, b, a, c, b)
	want := []Note{a, b, c}
	if len(got) != len(want) {
		t.Fatalf("Merge = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Merge = %v, want %v", got, want)
		}
	}
	if Infof("x") == Warnf("x") {
		t.Error("an info and a warning of the same text are different notes")
	}
}

func TestJSONAndString(t *testing.T) {
	n := Warnf("RT throttling takes %d%%", 5)
	b, err := json.Marshal(n)
	if err != nil || string(b) != `{"severity":"warning","text":"RT throttling takes 5%"}` {
		t.Fatalf("json = %s, %v", b, err)
	}
	var back Note
	if err := json.Unmarshal(b, &back); err != nil || back != n {
		t.Fatalf("round trip = %+v, %v", back, err)
	}
	if n.String() != "warning: RT throttling takes 5%" || Infof("x").String() != "x" {
		t.Errorf("String: %q, %q", n.String(), Infof("x").String())
	}
}
