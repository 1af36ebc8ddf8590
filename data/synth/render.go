package synth

import (
	"image"
)

// Rendering uses integer arithmetic only (coordinates in 1/8 pixel, 4×4 supersampling per pixel), so the
// pixels are identical on every platform.

// covered reports whether the sample at offset (dx, dy) from the object centre, in 1/8 pixel, lies inside a
// shape of half extent r8 (1/8 pixel).
func covered(shape string, dx, dy, r8 int) bool {
	ax, ay := dx, dy
	if ax < 0 {
		ax = -ax
	}
	if ay < 0 {
		ay = -ay
	}
	switch shape {
	case "circle":
		return dx*dx+dy*dy <= r8*r8
	case "square":
		return ax <= r8 && ay <= r8
	case "diamond":
		return ax+ay <= r8
	case "triangle": // apex up at -r, base at +r, base width 2r
		return dy <= r8 && 2*ax <= dy+r8
	}
	return false
}

// Render draws the scene: the background colour, then every object antialiased (coverage of 16 samples per
// pixel blended over what is already there). The centre pixel of every object is fully covered, so it has
// exactly the object's colour.
func Render(s Scene) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, s.Width, s.Height))
	bg := Palette[s.Background]
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = bg[0], bg[1], bg[2], 255
	}
	fg := Palette[s.Color]
	for _, o := range s.Objects {
		r8 := 8 * o.R
		for y := max(0, o.Y-o.R-1); y <= min(s.Height-1, o.Y+o.R+1); y++ {
			for x := max(0, o.X-o.R-1); x <= min(s.Width-1, o.X+o.R+1); x++ {
				n := 0
				for j := 0; j < 4; j++ {
					dy := 8*(y-o.Y) + 2*j - 3
					for i := 0; i < 4; i++ {
						if covered(s.Shape, 8*(x-o.X)+2*i-3, dy, r8) {
							n++
						}
					}
				}
				if n == 0 {
					continue
				}
				p := img.Pix[y*img.Stride+4*x:]
				for c := 0; c < 3; c++ {
					p[c] = uint8((int(p[c])*(16-n) + int(fg[c])*n + 8) / 16)
				}
			}
		}
	}
	return img
}
