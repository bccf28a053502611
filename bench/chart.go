package bench

// The PNG of a run's per-second series (-chart, -replot). Only this file
// imports the chart libraries (gonum plot with its fonts, LaTeX and PDF
// back ends); nothing in the payd binary links them.

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// writeChart draws the series as a PNG: throughput on top, latency below.
func writeChart(path, title string, pts []seriesPoint) error {
	thr := plot.New()
	thr.Title.Text = title
	thr.X.Label.Text = "second of the run"
	thr.Y.Label.Text = "payments per second"
	lat := plot.New()
	lat.X.Label.Text = "second of the run"
	lat.Y.Label.Text = "milliseconds (log scale)"
	// intake latency and time to final differ by orders of magnitude
	lat.Y.Scale = plot.LogScale{}
	lat.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	series := func(f func(seriesPoint) (float64, bool)) plotter.XYs {
		var xy plotter.XYs
		for _, p := range pts {
			if v, ok := f(p); ok {
				xy = append(xy, plotter.XY{X: float64(p.Second) + 0.5, Y: v})
			}
		}
		return xy
	}
	add := func(p *plot.Plot, name string, c color.RGBA, dashed bool, xy plotter.XYs) error {
		if len(xy) == 0 {
			return nil
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return err
		}
		l.Color = c
		l.Width = vg.Points(1.5)
		if dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}
	blue, orange, red := color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{214, 39, 40, 255}
	green, purple := color.RGBA{44, 160, 44, 255}, color.RGBA{148, 103, 189, 255}
	err := add(thr, "accepted/s", blue, false, series(func(p seriesPoint) (float64, bool) { return float64(p.Accepted), true }))
	if err == nil {
		err = add(thr, "completed/s", orange, false, series(func(p seriesPoint) (float64, bool) { return float64(p.Completed), true }))
	}
	for _, l := range []struct {
		name   string
		c      color.RGBA
		dashed bool
		f      func(seriesPoint) (float64, bool)
	}{
		{"intake p50", blue, true, func(p seriesPoint) (float64, bool) { return floor1(p.IntakeP50), p.Accepted > 0 }},
		{"intake p95", green, true, func(p seriesPoint) (float64, bool) { return floor1(p.IntakeP95), p.Accepted > 0 }},
		{"intake p99", purple, true, func(p seriesPoint) (float64, bool) { return floor1(p.IntakeP99), p.Accepted > 0 }},
		{"to final p50", orange, false, func(p seriesPoint) (float64, bool) { return floor1(p.FinalP50), p.Completed > 0 }},
		{"to final p99", red, false, func(p seriesPoint) (float64, bool) { return floor1(p.FinalP99), p.Completed > 0 }},
	} {
		if err == nil {
			err = add(lat, l.name, l.c, l.dashed, series(l.f))
		}
	}
	if err != nil {
		return fmt.Errorf("bench: chart: %w", err)
	}
	for _, p := range []*plot.Plot{thr, lat} {
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		p.X.Min = 0
	}
	thr.Y.Min = 0
	lat.Y.Min = 1
	lat.Legend.Top = false // the time-to-final lines run along the top
	img := vgimg.New(vg.Points(720), vg.Points(540))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4),
		PadRight: vg.Points(8), PadY: vg.Points(10)}
	cs := plot.Align([][]*plot.Plot{{thr}, {lat}}, tiles, dc)
	thr.Draw(cs[0][0])
	lat.Draw(cs[1][0])
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: -chart: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("bench: -chart: %w", err)
	}
	return f.Close()
}

// floor1 keeps a millisecond figure on the log scale (which has no 0).
func floor1(v float64) float64 { return max(v, 1) }
