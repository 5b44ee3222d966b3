@main struct Chat { static func main() {} }
